<?php
// The exception handler gets the uncaught exception with the trace php
// gives it in a script: its frames, then {main}.
set_exception_handler(function (Throwable $e) {
    echo "handler: ", $e->getMessage(), "\n";
    echo "frames: ", count($e->getTrace()), "\n";
    echo $e->getTraceAsString(), "\n";
});

function fail(): void
{
    throw new LogicException("boom");
}

fail();
