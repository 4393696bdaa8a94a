<?php
// warm.php — one prewarmed PHP invocation (docs/runtimes.md, "warm").
//
// Started by warm.sh before any request exists, in the sandbox the request
// will get. It says "ready" on fd 3, blocks reading fd 3 to EOF, then runs
// the handed-over entry as `php -f entry -- args...` would have: $argv,
// $argc, $_SERVER's script names, the whole environment (getenv, $_ENV,
// $_SERVER) replaced, the entry required in the global scope with no
// variable of ours left in it. php.ini settings are those of the warm
// start. It serves one invocation.
$__corral_entry = (static function () {
    $sock = fopen('php://fd/3', 'r+');
    @fwrite($sock, "ready\n");
    $data = stream_get_contents($sock);
    fclose($sock);
    $f = explode("\0", (string)$data);
    if (count($f) < 4 || $f[0] !== 'corral-warm 1' || end($f) !== '') {
        fwrite(STDERR, "corral warm.php: malformed handoff\n");
        exit(125);
    }
    $nargs = (int)$f[2];
    $entry = $f[1];
    $args = array_slice($f, 3, $nargs);
    foreach (array_keys(getenv()) as $k) {
        putenv($k);
        unset($_SERVER[$k]);
    }
    $_ENV = [];
    foreach (array_slice($f, 3 + $nargs, -1) as $kv) {
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
})();
require (static function () {
    $e = $GLOBALS['__corral_entry'];
    unset($GLOBALS['__corral_entry']);
    return $e;
})();
