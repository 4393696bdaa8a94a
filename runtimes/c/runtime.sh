#!/bin/sh
# runtime.sh <entry> [args...] — runs the program compile.sh built
# (contract: docs/runtimes.md). The entry was only needed to compile;
# the program gets the args that follow it.
shift
exec ./.corral-bin "$@"
