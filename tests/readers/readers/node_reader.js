// node_reader.js: Node's readline (splits on LF, CR and CRLF) + JSON.parse.
// usage: node node_reader.js IN.jsonl OUT.jsonl  (format: see py_readers.py)
// Numbers are doubles; ids are rendered with String(n).
'use strict';
const fs = require('fs');
const readline = require('readline');
const { Readable } = require('stream');

function render(v) {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return null;
}

function subjects(rec, loc) {
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) return null;
  const out = [Object.prototype.hasOwnProperty.call(rec, 'author_id') ? render(rec.author_id) : null];
  if (loc === 'am' && Array.isArray(rec.mentions)) {
    for (const e of rec.mentions) {
      if (e !== null && typeof e === 'object' && !Array.isArray(e) &&
          Object.prototype.hasOwnProperty.call(e, 'id')) out.push(render(e.id));
    }
  }
  return out;
}

// a value that is not an object is a record of no one
function wrap(s) { return s === null ? { n: 1 } : { s }; }

async function lines(buf) {
  const rl = readline.createInterface({ input: Readable.from([buf]), crlfDelay: Infinity });
  const out = [];
  for await (const l of rl) out.push(l);
  return out;
}

async function main() {
  const items = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((x) => x);
  const o = fs.openSync(process.argv[3], 'w');
  for (const line of items) {
    const it = JSON.parse(line);
    const body = Buffer.from(it.b64, 'base64');
    const res = { id: it.id, r: 'node-readline', recs: [], err: null };
    try {
      if (it.mode === 'lines') {
        for (const l of await lines(body)) {
          if (!l.trim()) continue;
          try { res.recs.push(wrap(subjects(JSON.parse(l), it.loc))); } catch (e) {
            res.recs.push({ err: String(e.message).slice(0, 80) });
          }
        }
      } else {
        res.r = 'node-json';
        const v = JSON.parse(body.toString('utf8'));
        if (Array.isArray(v)) for (const x of v) res.recs.push(wrap(subjects(x, it.loc)));
        else res.recs.push(wrap(subjects(v, it.loc)));
      }
    } catch (e) {
      res.err = String(e.message).slice(0, 80);
    }
    fs.writeSync(o, JSON.stringify(res) + '\n');
  }
  fs.closeSync(o);
}

main().catch((e) => { console.error(e); process.exit(1); });
