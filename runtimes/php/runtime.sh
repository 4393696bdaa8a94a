#!/bin/sh
# runtime.sh <entry> [args...] — runs a PHP script with php-cli (contract:
# docs/runtimes.md). -f names the file (an entry named -x.php stays a
# file), and `--` passes every arg to the script unchanged. Errors follow
# Debian's CLI php.ini: not displayed on stdout, logged to stderr.
entry=$1
shift
exec php -f "$entry" -- "$@"
