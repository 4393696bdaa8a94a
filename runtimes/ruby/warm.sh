#!/bin/sh
# warm.sh — the ruby runtime's warm entry (contract: docs/runtimes.md,
# "warm"): starts ruby (and rubygems) ahead; warm.rb then waits on fd 3
# for one invocation and runs it in this same process.
exec ruby -- "$CORRAL_RUNTIME_DIR/warm.rb"
