# Copies stdin to stdout byte for byte, then says how many lines it saw.
n=0
while IFS= read -r line || [ -n "$line" ]; do
	printf '%s\n' "$line"
	n=$((n + 1))
done
echo "lines: $n" >&2
