<?php
// An uncaught exception with a previous one: php prints both traces down
// to {main}, then runs the shutdown functions, and ends with 255.
register_shutdown_function(function () {
    $mine = array_filter(array_keys($GLOBALS), fn ($k) => $k[0] !== '_');
    echo "shutdown; globals: ", implode(',', $mine), "\n";
});
$e = "the program's own \$e";

function parse(string $text): int
{
    if (!ctype_digit($text)) {
        throw new InvalidArgumentException("not a number: $text");
    }
    return (int)$text;
}

function load_config(): int
{
    try {
        return parse("abc");
    } catch (InvalidArgumentException $x) {
        throw new RuntimeException("bad config", 3, $x);
    }
}

echo "before\n";
load_config();
