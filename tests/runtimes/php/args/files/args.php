<?php
echo "argv0=" . $argv[0] . "\n";
echo "argc=" . ($argc - 1) . "\n";
foreach (array_slice($argv, 1) as $a) {
    echo "[$a]\n";
}
