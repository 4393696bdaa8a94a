#!/bin/sh
# zygote.sh — the ruby runtime's fork server (docs/runtimes.md, "zygote"):
# one interpreter per worker, started once; zygote.rb forks a child per
# invocation that enters the invocation's sandbox before running it.
exec ruby -- "$CORRAL_RUNTIME_DIR/zygote.rb"
