#!/bin/sh
# runtime.sh <entry> [args...] — runs a Node.js program (contract:
# docs/runtimes.md). A .js entry is CommonJS (require), a .mjs entry an ES
# module (import), as node decides by itself.
exec node -- "$@"
