# bash's nearest thing to an uncaught exception: set -u aborts on an
# unset variable, with a message naming it.
set -eu
echo "before"
echo "$no_such_variable"
echo "never printed"
