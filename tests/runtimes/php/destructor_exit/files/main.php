<?php
class Last
{
    public function __destruct() { echo "destructor\n"; exit(6); }
}
$x = new Last();
echo "main\n";
