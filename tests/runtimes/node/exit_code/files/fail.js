console.log("about to fail");
console.error("something went wrong");
process.exitCode = 3;
