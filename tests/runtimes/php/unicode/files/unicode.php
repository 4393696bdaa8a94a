<?php
echo "héllo wörld ✓ 日本語 🎉\n";
echo "bytes=" . strlen("日本語") . "\n";
