import sys

print("argv0=" + sys.argv[0])
print("argc=%d" % (len(sys.argv) - 1))
for a in sys.argv[1:]:
    print("[%s]" % a)
