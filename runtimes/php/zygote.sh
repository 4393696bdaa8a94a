#!/bin/sh
# zygote.sh — the php runtime's fork server (docs/runtimes.md, "zygote"):
# one interpreter per worker, started once; zygote.php forks a child per
# invocation that enters the invocation's sandbox before running it.
exec php -f "$CORRAL_RUNTIME_DIR/zygote.php"
