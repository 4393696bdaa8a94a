<?php
function parse($s) {
    throw new RuntimeException("boom");
}
echo "before\n";
parse("x");
