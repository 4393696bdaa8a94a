#!/bin/sh
# runtime.sh <entry> [args...] — runs a Python 3 program (contract:
# docs/runtimes.md). -B: no __pycache__ is written, since the work dir is
# thrown away after the run. Output is buffered as Python does for any
# pipe: a program that wants its stdout/stderr interleaved exactly flushes
# (or the request sets PYTHONUNBUFFERED=1).
exec python3 -B -- "$@"
