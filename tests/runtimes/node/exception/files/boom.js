function parse(text) {
  const n = Number(text);
  if (Number.isNaN(n)) throw new TypeError("not a number: " + text);
  return n;
}

console.log("before");
parse("abc");
console.log("never printed");
