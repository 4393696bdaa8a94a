<?php
require __DIR__ . '/lib/greet.php';
require 'helper.php';
echo greet('corral') . "\n";
echo shout('same folder') . "\n";
