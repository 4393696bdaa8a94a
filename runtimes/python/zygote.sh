#!/bin/sh
# zygote.sh — the python runtime's fork server (docs/runtimes.md, "zygote"):
# one interpreter per worker, started once; zygote.py forks a child per
# invocation that enters the invocation's sandbox before running it.
exec python3 -B -- "$CORRAL_RUNTIME_DIR/zygote.py"
