<?php
echo "never printed";
echo "a" "b";
