import sys

print("about to fail", flush=True)
print("something went wrong", file=sys.stderr)
sys.exit(3)
