<?php
function shout($s) { return strtoupper($s) . "!"; }
