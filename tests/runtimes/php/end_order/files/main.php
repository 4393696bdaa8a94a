<?php
// The end of a script, in php's order: shutdown functions (and the one a
// shutdown function registers, which sets the exit status), destructors,
// then the output buffers flushed (their callbacks run).
class Noisy
{
    public function __construct(private string $name) {}
    public function __destruct() { echo "destructor: {$this->name}\n"; }
}

$kept = new Noisy("global");
register_shutdown_function(function () {
    echo "shutdown 1\n";
    register_shutdown_function(function () {
        echo "shutdown 2, registered by shutdown 1\n";
        exit(4);
    });
});
ob_start(fn (string $out) => "[buffer: " . strtoupper($out) . "]\n");
echo "main\n";
