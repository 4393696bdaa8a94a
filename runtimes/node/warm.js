// warm.js — one prewarmed Node.js invocation (docs/runtimes.md, "warm").
//
// Started by warm.sh before any request exists, in the sandbox the
// request will get. It says "ready" on fd 3, blocks reading fd 3 to EOF,
// then runs the handed-over entry as `node entry args...` would have:
// process.argv, the whole environment replaced, the entry run as the main
// module by node's own Module.runMain (CommonJS, or an ES module for .mjs
// and "type": "module", as node decides). Options node reads only at
// start-up (NODE_OPTIONS...) are those of the warm start. It serves one
// invocation; the process ends with the program.
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

// Before the handoff, while nobody waits: what node otherwise does
// lazily on the first run of a program — the process.stdout/stderr
// streams, util's formatting, the CommonJS wrapper and compiler — so
// that the invocation does not pay for it (measured: Module.runMain of
// console.log("OK") 7-12 ms without, 2-3 ms with). Nothing of it is
// visible to the program: the streams are the ones it would get, and the
// rehearsal module is compiled outside require's cache.
function rehearse() {
  void process.stdout;
  void process.stderr;
  require('util').format('%s %d %j', 'a', 1, { a: 1 });
  const m = new Module('/corral-rehearsal.js', null);
  m._compile('module.exports = 1;\n', '/corral-rehearsal.js');
}

function receive() {
  try {
    fs.writeSync(3, 'ready\n');
  } catch (e) {
    // nobody listens: the handoff read below finds out
  }
  const chunks = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(3, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN' || e.code === 'EINTR') continue;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  fs.closeSync(3);
  const fields = Buffer.concat(chunks).toString('utf8').split('\0');
  if (fields.length < 4 || fields[0] !== 'corral-warm 1' || fields[fields.length - 1] !== '') {
    fs.writeSync(2, 'corral warm.js: malformed handoff\n');
    process.exit(125);
  }
  const nargs = parseInt(fields[2], 10);
  return {
    entry: fields[1],
    args: fields.slice(3, 3 + nargs),
    env: fields.slice(3 + nargs, -1),
  };
}

rehearse();
const inv = receive();
for (const k of Object.keys(process.env)) delete process.env[k];
for (const kv of inv.env) {
  const i = kv.indexOf('=');
  process.env[kv.slice(0, i)] = kv.slice(i + 1);
}
process.argv = [process.argv[0], path.resolve(inv.entry), ...inv.args];
Module.runMain();
