<?php
echo "main\n";
die();
