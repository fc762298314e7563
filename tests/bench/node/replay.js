// replay.js: the Node peer of `tether run state-read` on a state file:
// reads the log (one compact event per line, as tether appends them) in
// chunks, applies each event's patch with fast-json-patch, and prints
// {"state", "index"} as JSON, as the state_read answer carries them.
//
//   node replay.js FILE
'use strict';
const fs = require('fs');
const { StringDecoder } = require('string_decoder');
const { applyPatch } = require('fast-json-patch');

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node replay.js FILE\n');
  process.exit(2);
}
const fd = fs.openSync(file, 'r');
const chunk = Buffer.alloc(1 << 20);
let state = {};
let index = -1;
let rest = '';
const decoder = new StringDecoder('utf8');
for (;;) {
  const n = fs.readSync(fd, chunk, 0, chunk.length, null);
  if (n === 0) break;
  const text = rest + decoder.write(chunk.subarray(0, n));
  const lines = text.split('\n');
  rest = lines.pop();
  for (const line of lines) {
    if (line.trim() === '') continue;
    const event = JSON.parse(line);
    // Fastest settings: no validation, patch the document in place.
    state = applyPatch(state, event.patch, false, true).newDocument;
    index = event.index;
  }
}
if (rest.trim() !== '') {
  const event = JSON.parse(rest);
  state = applyPatch(state, event.patch, false, true).newDocument;
  index = event.index;
}
fs.closeSync(fd);
process.stdout.write(JSON.stringify({ state, index }) + '\n');
