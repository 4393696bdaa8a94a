<?php
// A user stream wrapper left open: php closes it at the very end of
// shutdown (after the output layer is gone, so its echo goes to stdout
// directly) and its stream_close may still set the exit status.
class Tape
{
    public $context;
    private string $data = '';
    public function stream_open(string $path, string $mode, int $options, ?string &$opened): bool { return true; }
    public function stream_write(string $d): int { $this->data .= $d; return strlen($d); }
    public function stream_close(): void
    {
        echo "closed with: {$this->data}\n";
        exit(9);
    }
}
stream_wrapper_register('tape', Tape::class);
$f = fopen('tape://x', 'w');
fwrite($f, "hello");
echo "main\n";
