# Sources a second file from a sub-folder, relative to this script.
. "$(dirname "$0")/lib/greet.sh"
greet "corral"
