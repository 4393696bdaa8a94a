#!/bin/sh
# warm.sh — the node runtime's warm entry (contract: docs/runtimes.md,
# "warm"): starts node ahead; warm.js then waits on fd 3 for one
# invocation and runs it in this same process.
exec node -- "$CORRAL_RUNTIME_DIR/warm.js"
