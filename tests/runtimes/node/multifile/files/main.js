const { greet } = require("./lib/greet");
const data = require("./data.json");

console.log(greet("corral"));
console.log("answer=" + data.answer);
