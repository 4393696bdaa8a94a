// Copies stdin to stdout, then says how many bytes it saw.
const fs = require("fs");

const data = fs.readFileSync(0);
process.stdout.write(data);
console.error("bytes: " + data.length);
