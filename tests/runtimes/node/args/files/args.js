const args = process.argv.slice(2);
console.log("argc=" + args.length);
for (const a of args) console.log("[" + a + "]");
