#!/bin/sh
# runtime.sh <entry> [args...] — runs a bash script (contract: docs/runtimes.md).
# exec: bash replaces this shell, so the user's program is the stage's
# process and its exit status is the stage's. `--` keeps an entry whose
# name starts with '-' from being read as an option.
exec bash -- "$@"
