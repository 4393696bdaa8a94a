import sys

print("héllo wörld ✓ 日本語 🎉")
print("encoding=" + sys.stdout.encoding)
print("chars=%d" % len("日本語"))
