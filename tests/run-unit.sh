#!/bin/sh
# Runs every unit-test binary in BUILD/tests, prints one closing line with
# the totals, and fails if any test binary failed.
build=${1:-build}
passed=0 failed=0 bad=0
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')
	f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
	if [ $rc -ne 0 ] || [ -z "$line" ]; then bad=$((bad + 1)); echo "unit test binary failed: $t (exit $rc)"; fi
done
echo "unit: $passed passed, $failed failed"
[ $bad -eq 0 ] && [ $failed -eq 0 ]
