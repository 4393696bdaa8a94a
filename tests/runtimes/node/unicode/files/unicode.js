console.log("héllo wörld ✓ 日本語 🎉");
console.log("chars=" + [..."日本語🎉"].length);
