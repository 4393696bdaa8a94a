echo "héllo wörld ✓ 日本語 🎉"
s="日本語"
echo "chars=${#s}"
