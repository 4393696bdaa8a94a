<?php
// exit with a string prints it and ends with status 0; nothing after it runs.
register_shutdown_function(fn () => print("shutdown\n"));
echo "main\n";
exit("bye\n");
echo "never\n";
