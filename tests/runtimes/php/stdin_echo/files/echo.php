<?php
$data = stream_get_contents(STDIN);
fwrite(STDOUT, $data);
fwrite(STDERR, "bytes: " . strlen($data) . "\n");
