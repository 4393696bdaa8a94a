#!/bin/sh
# warm.sh — the php runtime's warm entry (contract: docs/runtimes.md,
# "warm"): starts php ahead; warm.php then waits on fd 3 for one
# invocation and runs it in this same process.
exec php -f "$CORRAL_RUNTIME_DIR/warm.php"
