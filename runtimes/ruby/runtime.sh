#!/bin/sh
# runtime.sh <entry> [args...] — runs a Ruby program (contract:
# docs/runtimes.md).
exec ruby -- "$@"
