#!/bin/sh
# compile.sh <entry> — compiles every .c file the request sent, in any
# sub-folder, into one program ./.corral-bin (contract: docs/runtimes.md).
#
# The entry names the program (it is main's file) but every .c file is
# part of it, so a multi-file program needs no build file. `#include`
# finds headers next to the including file, or from the work dir's root
# (-I.). The request's env may set CFLAGS (default: -std=gnu17 -O2) and
# LDLIBS (default: -lm). gcc's messages go to the user as the compile
# stage's stderr; a non-zero exit is a compile error and nothing runs.
if [ -z "$(find . -type f -name '*.c' -print | head -n 1)" ]; then
	echo "corral: no .c file to compile (the C runtime compiles every .c file sent)" >&2
	exit 1
fi
CFLAGS=${CFLAGS--std=gnu17 -O2}
LDLIBS=${LDLIBS--lm}
export CFLAGS LDLIBS
# Names are given as find prints them minus "./", for readable messages;
# a name starting with '-' keeps its "./" so gcc does not take it for an
# option. CFLAGS/LDLIBS are split on spaces on purpose (several flags).
exec find . -type f -name '*.c' -exec sh -c '
	for f do
		shift
		f=${f#./}
		case $f in -*) f=./$f ;; esac
		set -- "$@" "$f"
	done
	exec gcc $CFLAGS -pipe -fdiagnostics-color=never -I. -o .corral-bin "$@" $LDLIBS
' sh {} +
