#!/bin/sh
# warm.sh — the python runtime's warm entry (contract: docs/runtimes.md,
# "warm"): starts the interpreter ahead, warm.py then waits on fd 3 for
# one invocation and runs it in this same process.
exec python3 -B -- "$CORRAL_RUNTIME_DIR/warm.py"
