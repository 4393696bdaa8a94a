#!/bin/sh
# bench/isolation.sh [BUILD] [N] — median time added per invocation by each
# isolation level against level "none", for /bin/true and python `pass`
# (see bench/isolation/bench.c). Builds the bench against BUILD's
# libraries (default ./build; run `make BUILD=...` first). Prints figures,
# asserts nothing.
set -e
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-50}
[ -f "$build/libproxy.a" ] || { echo "no $build/libproxy.a: make BUILD=$build first" >&2; exit 1; }
tmp=$(mktemp -d /tmp/corral-isobench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
cc -std=gnu11 -D_GNU_SOURCE -O2 -Icommon -Iproxy -o "$tmp/bench" bench/isolation/bench.c \
	"$build/libproxy.a" "$build/libcorral.a" -lnng -lmsgpackc -ljansson -lseccomp -lpthread -lm
mkdir "$tmp/true" "$tmp/python"
cp /bin/true "$tmp/true/runtime.sh"
cp runtimes/python/runtime.sh "$tmp/python/runtime.sh"
chmod 755 "$tmp/true/runtime.sh" "$tmp/python/runtime.sh"
echo "kernel $(uname -r), $(nproc) cpus, euid $(id -u)"
"$tmp/bench" "$tmp/true" "$tmp/python" "$tmp/work" "$n"
