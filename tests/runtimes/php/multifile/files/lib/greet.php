<?php
function greet($name) { return "Hello from lib, $name!"; }
