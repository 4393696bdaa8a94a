<?php
echo "about to fail\n";
fwrite(STDERR, "something went wrong\n");
exit(3);
