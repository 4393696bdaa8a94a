<?php
// A fatal error that is no exception (memory_limit): exit 255, the
// shutdown functions still run.
register_shutdown_function(function () {
    echo "shutdown after: ", error_get_last()['message'] ?? 'nothing', "\n";
});
ini_set('memory_limit', '16M');
echo "before\n";
$s = str_repeat('x', 64 << 20);
echo "never\n";
