import { greet } from "./lib/greet.mjs";

console.log(greet("esm"));
