<?php
// warm.php — one prewarmed PHP invocation (docs/runtimes.md, "warm").
//
// Started by warm.sh before any request exists, in the sandbox the request
// will get. It says "ready" on fd 3, blocks reading fd 3 to EOF, then runs
// the handed-over entry as `php -f entry -- args...` would have: $argv,
// $argc, $_SERVER's script names, the whole environment (getenv, $_ENV,
// $_SERVER) replaced, the entry required in the global scope with no
// variable of ours left in it (an uncaught Throwable passes through a
// catch there, which takes the global $__corral_uncaught for a moment:
// rethrow). php.ini settings are those of the warm start. It serves one
// invocation.
//
// The functions are also the fork server's (zygote.php): its child, once
// in its sandbox, takes the invocation with prepare (or receive,
// prewarmed) and requires the entry at its own top level. The require
// must be at a top level (in a function, the entry's variables would be
// the function's, not globals), so it is the caller's line, not a
// function here; the namespace keeps our names out of the program's way.
namespace Corral\Warm;

/** "ready" on fd 3, then the handoff read to EOF: [entry, args, env]. */
function receive(): array
{
    $sock = fopen('php://fd/3', 'r+'); // a dup of fd 3
    @fwrite($sock, "ready\n");
    $data = stream_get_contents($sock);
    fclose($sock);
    close3();
    return parse((string)$data);
}

/** Fd 3 itself closed, as the contract asks: php://fd/3 was a dup. Needs
 * FFI (php8.2-common has it); without it fd 3 stays open, harmless to us. */
function close3(): void
{
    if (class_exists('FFI', false)) {
        try {
            \FFI::cdef('int close(int);')->close(3);
        } catch (\Throwable $e) {
            // FFI disabled (ffi.enable): leave it
        }
    }
}

/** The handoff's entry, args and environment (exits 125 when malformed). */
function parse(string $data): array
{
    $f = explode("\0", $data);
    if (count($f) < 4 || $f[0] !== 'corral-warm 1' || end($f) !== '') {
        fwrite(STDERR, "corral warm.php: malformed handoff\n");
        exit(125);
    }
    $nargs = (int)$f[2];
    return [$f[1], array_slice($f, 3, $nargs), array_slice($f, 3 + $nargs, -1)];
}

/** $argv, $argc, $_SERVER, $_ENV and getenv the invocation's; returns the
 * path to require. $env: KEY=VALUE strings. */
function prepare(string $entry, array $args, array $env): string
{
    foreach (array_keys(getenv()) as $k) {
        putenv($k);
        unset($_SERVER[$k]);
    }
    $_ENV = [];
    foreach ($env as $kv) {
        putenv($kv);
        [$k, $v] = explode('=', $kv, 2);
        $_ENV[$k] = $v;
        $_SERVER[$k] = $v;
    }
    $argv = array_merge([$entry], $args);
    $GLOBALS['argv'] = $_SERVER['argv'] = $argv;
    $GLOBALS['argc'] = $_SERVER['argc'] = count($argv);
    foreach (['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PHP_SELF', 'PATH_TRANSLATED'] as $k) {
        $_SERVER[$k] = $entry;
    }
    return $entry[0] === '/' ? $entry : './' . $entry;
}

/** The Throwable that ends the entry, thrown on as it came once its
 * stack trace (and its previous ones') has lost our frame, the `require`
 * in $ours: a cold run's trace ends in the entry's {main}. The caller's
 * catch, at the top level, left it in the global $name: unset here, so
 * that the program's shutdown functions find no variable of ours. */
function rethrow(string $name, string $ours): never
{
    $e = $GLOBALS[$name];
    unset($GLOBALS[$name]);
    try {
        $seen = [];
        for ($x = $e; $x !== null && !isset($seen[spl_object_id($x)]); $x = $x->getPrevious()) {
            $seen[spl_object_id($x)] = true;
            $trace = new \ReflectionProperty($x instanceof \Exception ? \Exception::class : \Error::class,
                                             'trace');
            $frames = $trace->getValue($x);
            if (is_array($frames)) {
                $trace->setValue($x, array_values(array_filter(
                    $frames, fn ($f) => !is_array($f) || ($f['file'] ?? null) !== $ours)));
            }
        }
    } catch (\Throwable) {
        // left as it is: php reports it anyway
    }
    throw $e;
}

if (realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    try {
        require prepare(...receive());
    } catch (\Throwable $__corral_uncaught) {
        rethrow('__corral_uncaught', __FILE__);
    }
}
