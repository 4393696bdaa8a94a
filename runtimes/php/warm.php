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
//
// The quick end (quick_end: installed here before the handoff, and once
// by zygote.php's server, inherited by every child). PHP ends a process
// by freeing the whole interpreter: the rest of the request's shutdown
// frees what the run allocated, then php_module_shutdown frees every
// extension's function and class tables, ini entries, interned
// strings... In a fork server's child nearly all of that memory is the
// server's, shared copy-on-write, and each free() writes to it: the child
// copied most of the heap just to exit (a one-line program: 45-55 ms of
// CPU, as much as a cold php; under 10 with the quick end). A warm run's
// memory is its own, yet its end costs about 10 ms (4 with it). So the
// run leaves at the first point where nothing of the program's end is
// left: sapi_module.deactivate, which php_request_shutdown
// calls (step 12, sapi_deactivate_module) after every shutdown function
// (and those they register), every destructor, the flush of every output
// buffer, every extension's RSHUTDOWN, the close of every resource (user
// stream wrappers' stream_close, popen's pclose, tmpfile's unlink...) and
// the objects' own free. It is never called while a program runs. What
// follows it only frees memory (and, in exit(), libc's atexit handlers:
// no effect outside). The CLI's own deactivate does fflush(stdout); ours
// is 42 bytes of x86-64 in a page of its own: fflush(NULL) (every stdio
// stream, as exit() would), then _exit(EG(exit_status)) -- the status the
// CLI would exit with, read at that moment (0 at a normal end, exit(N),
// 255 after an uncaught exception or a fatal or parse error, whatever a
// shutdown function or destructor set). No PHP code can run there: an FFI
// callback fails ("Cannot call callback"), the executor is gone.
//
// Nothing of it is hard-coded but the head of sapi_module_struct (the
// same since PHP 5) and the order of error_reporting and exit_status in
// zend_executor_globals (as in PHP 8.2), and each is checked at start: the
// SAPI is cli (sapi_module's name and pretty name read), its flush slot
// is where the struct says (replaced for a moment by an FFI callback,
// flush() must call it, with sapi_globals' first field, server_context,
// as its argument), the deactivate slot is set; error_reporting is found
// in executor_globals (exported by the php binary) as the one int equal
// to two unusual values set in turn, and the int after it (exit_status)
// is 0. Any doubt, another machine than x86-64, an mmap or mprotect that
// fails (W^X policies): no quick end, every run ends as php ends it.
namespace Corral\Warm;

// libc and the php binary's own symbols, for the quick end (see the top).
const LIBC = <<<'C'
typedef unsigned long size_t;
void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
int mprotect(void *addr, size_t len, int prot);
int munmap(void *addr, size_t len);
int fflush(void *stream);
void _exit(int status);
C;
const PHP = <<<'C'
typedef unsigned long uintptr_t;
typedef struct {  /* the head of main/SAPI.h's struct _sapi_module_struct */
    char *name;         /* one declarator a line: FFI's parser reads */
    char *pretty_name;  /* "char *a, *b" as char *a; char **b */
    void *startup;
    void *shutdown;
    void *activate;
    void *deactivate;
    void *ub_write;
    void (*flush)(uintptr_t server_context);
} sapi_module_struct;
sapi_module_struct sapi_module;
uintptr_t sapi_globals[1]; /* its first field: void *server_context */
int executor_globals[256];
C;
const SAPI_DEACTIVATE = 5, SAPI_FLUSH = 7; // slots (pointers) of sapi_module_struct
const PROT_RW = 3, PROT_RX = 5, MAP_PRIVATE_ANON = 0x22;

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

/** A pointer's value, the address it holds. */
function address(\FFI\CData $ptr): int
{
    $box = \FFI::new('void *[1]');
    $box[0] = $ptr;
    return \FFI::cast('intptr_t *', \FFI::addr($box))[0];
}

/** The indexes of $ints[0..$n) that hold $value. */
function find_int(\FFI\CData $ints, int $n, int $value): array
{
    $at = [];
    for ($i = 0; $i < $n; $i++) {
        if ($ints[$i] === $value) {
            $at[] = $i;
        }
    }
    return $at;
}

/** The address of EG(exit_status), the int after EG(error_reporting),
 * found as the one int of executor_globals equal to two unusual values
 * set in turn; 0 when it is not found so, or exit_status is not 0. */
function exit_status_address(\FFI $php): int
{
    $eg = \FFI::cast('int *', \FFI::addr($php->executor_globals));
    $old = error_reporting();
    $at = [];
    foreach ([0x2BADF00D, 0x13572468] as $mark) {
        error_reporting($mark);
        $at[] = find_int($eg, 255, $mark);
    }
    error_reporting($old);
    if (count($at[0]) !== 1 || $at[0] !== $at[1] || $eg[$at[0][0] + 1] !== 0) {
        return 0;
    }
    return address($eg) + 4 * ($at[0][0] + 1);
}

/** Whether sapi_module is the CLI's, laid out as PHP declares it: its
 * flush slot, replaced for a moment by a callback, is what flush() calls,
 * with server_context; and the deactivate slot is set. */
function sapi_checked(\FFI $php): bool
{
    $sm = $php->sapi_module;
    if (PHP_SAPI !== 'cli' || $sm->name === null || \FFI::string($sm->name) !== 'cli' ||
        $sm->pretty_name === null || \FFI::string($sm->pretty_name) !== 'Command Line Interface') {
        return false;
    }
    $slots = \FFI::cast('intptr_t *', \FFI::addr($php->sapi_module));
    [$flush, $context, $got] = [$slots[SAPI_FLUSH], $php->sapi_globals[0], []];
    try {
        $php->sapi_module->flush = function (int $ctx) use (&$got): void {
            $got[] = $ctx;
        };
        $php->sapi_globals[0] = 0x5A17;
        \flush();
    } finally {
        $php->sapi_globals[0] = $context;
        $slots[SAPI_FLUSH] = $flush;
    }
    return in_array(0x5A17, $got, true) && $slots[SAPI_DEACTIVATE] !== 0;
}

/** x86-64: fflush(NULL); _exit(*(int *)$status). */
function end_code(\FFI $libc, int $status): string
{
    return "\x48\x83\xec\x08"                                   // sub $8,%rsp (calls' alignment)
         . "\x31\xff"                                           // xor %edi,%edi: NULL
         . "\x48\xb8" . pack('P', address($libc->fflush)) . "\xff\xd0" // movabs $fflush,%rax; call *%rax
         . "\x48\xb8" . pack('P', $status) . "\x8b\x38"        // movabs $status,%rax; mov (%rax),%edi
         . "\x48\xb8" . pack('P', address($libc->_exit)) . "\xff\xe0"; // movabs $_exit,%rax; jmp *%rax
}

/** The quick end (see the top) as sapi_module.deactivate; false, and
 * php's own end, when anything is not as expected. */
function quick_end(): bool
{
    if (php_uname('m') !== 'x86_64' || !class_exists('FFI', false)) {
        return false;
    }
    try {
        $php = \FFI::cdef(PHP);
        $status = exit_status_address($php);
        if ($status === 0 || !sapi_checked($php)) {
            return false;
        }
        $libc = \FFI::cdef(LIBC, 'libc.so.6');
        $code = end_code($libc, $status);
        $page = $libc->mmap(null, 4096, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
        if ($page === null || address($page) === -1) {
            return false;
        }
        \FFI::memcpy($page, $code, strlen($code));
        if ($libc->mprotect($page, 4096, PROT_RX) < 0) {
            $libc->munmap($page, 4096);
            return false;
        }
        \FFI::cast('intptr_t *', \FFI::addr($php->sapi_module))[SAPI_DEACTIVATE] = address($page);
        return true;
    } catch (\FFI\Exception $e) { // FFI disabled (ffi.enable), a symbol missing...
        return false;
    }
}

if (realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    quick_end();
    try {
        require prepare(...receive());
    } catch (\Throwable $__corral_uncaught) {
        rethrow('__corral_uncaught', __FILE__);
    }
}
