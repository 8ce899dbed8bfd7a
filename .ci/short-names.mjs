// Build step (make build): gives the wasm's imports from wasm-bindgen's own shim module
// ('./bep_bg.js') and all its exports short names, in the wasm and in the JS that
// provides / calls them (dist/bep.js), so that neither ships names like
// `__wbg_queueMicrotask_1e8503a8a690f0a3` or
// `wasm_bindgen__convert__closures_____invoke__h5ec2d5208ee39993` (their hex hashes do
// not compress). Imports from our glue modules keep their names (they are those
// modules' exports). Fails, leaving the files untouched, unless every renamed import key
// occurs exactly once in the JS and every `wasm.<name>` in the JS is an export before
// and after.
//
//   node .ci/short-names.mjs <dir with bep.js and bep_bg.wasm>
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
const SHIM = './bep_bg.js';
const wasmPath = path.join(dir, 'bep_bg.wasm');
const jsPath = path.join(dir, 'bep.js');
const wasm = readFileSync(wasmPath);
let js = readFileSync(jsPath, 'utf8');

function uleb(buf, at) {
  let value = 0;
  let shift = 0;
  let b;
  do {
    b = buf[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return [value, at];
}

function leb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

const str = (s) => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([leb(b.length), b]);
};

/** Short names: a, b, ..., z, A, ..., Z, aa, ab, ... (valid JS identifiers). */
function shortName(i) {
  const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  let s = '';
  do {
    s = ALPHA[i % ALPHA.length] + s;
    i = Math.floor(i / ALPHA.length) - 1;
  } while (i >= 0);
  return s;
}

/** Skips an import description of kind `kind` starting at `at`. */
function skipDesc(kind, at) {
  const limits = (p) => {
    const flags = wasm[p++];
    [, p] = uleb(wasm, p);
    if (flags & 1) [, p] = uleb(wasm, p);
    return p;
  };
  switch (kind) {
    case 0: // function: type index
      return uleb(wasm, at)[1];
    case 1: // table: reftype, limits
      return limits(at + 1);
    case 2: // memory: limits
      return limits(at);
    case 3: // global: valtype, mutability
      return at + 2;
    case 4: // tag: attribute, type index
      return uleb(wasm, at + 1)[1];
    default:
      throw new Error(`unknown import kind ${kind}`);
  }
}

/** `wasm.<name>` references in the JS. */
const refs = () => new Set([...js.matchAll(/\bwasm\.([\w$]+)/g)].map((m) => m[1]));

/** The export section with short names; renames `wasm.<name>` in the JS to match. */
function exportSection(body, end) {
  let p = body;
  let count;
  [count, p] = uleb(wasm, p);
  const names = [];
  const entries = [leb(count)];
  for (let i = 0; i < count; i++) {
    let n;
    [n, p] = uleb(wasm, p);
    names.push(wasm.subarray(p, p + n).toString('utf8'));
    p += n;
    const [, next] = uleb(wasm, p + 1); // kind, index
    entries.push(null, wasm.subarray(p, next));
    p = next;
  }
  if (p !== end) throw new Error('export section not fully read');
  const before = refs();
  for (const r of before) if (!names.includes(r)) throw new Error(`bep.js uses wasm.${r}, not an export`);
  const short = names.map((_, i) => shortName(i));
  names.forEach((name, i) => {
    js = js.replace(new RegExp(`\\bwasm\\.${name.replace(/[$]/g, '\\$')}(?![\\w$])`, 'g'), `wasm.${short[i]}`);
    entries[1 + 2 * i] = str(short[i]);
  });
  for (const r of refs()) if (!short.includes(r)) throw new Error(`wasm.${r} left unrenamed`);
  exported = count;
  const section = Buffer.concat(entries);
  return Buffer.concat([Buffer.from([7]), leb(section.length), section]);
}

let exported = 0;
let at = 8;
const parts = [wasm.subarray(0, 8)];
let renamed = 0;
while (at < wasm.length) {
  const id = wasm[at];
  const [size, body] = uleb(wasm, at + 1);
  const end = body + size;
  if (id === 7) {
    parts.push(exportSection(body, end));
    at = end;
    continue;
  }
  if (id !== 2) {
    parts.push(wasm.subarray(at, end));
    at = end;
    continue;
  }
  let p = body;
  let count;
  [count, p] = uleb(wasm, p);
  const entries = [leb(count)];
  for (let i = 0; i < count; i++) {
    let n;
    [n, p] = uleb(wasm, p);
    const module = wasm.subarray(p, p + n).toString('utf8');
    p += n;
    [n, p] = uleb(wasm, p);
    let name = wasm.subarray(p, p + n).toString('utf8');
    p += n;
    const kind = wasm[p];
    const descEnd = skipDesc(kind, p + 1);
    if (module === SHIM) {
      const short = shortName(renamed++);
      const key = new RegExp(`(?<![\\w$])${name.replace(/[$]/g, '\\$')}(?=:)`, 'g');
      const hits = js.match(key)?.length ?? 0;
      const anywhere = js.split(name).length - 1;
      if (hits !== 1 || anywhere !== 1) throw new Error(`${name}: ${hits} keys, ${anywhere} occurrences in bep.js (expected 1)`);
      js = js.replace(key, short);
      name = short;
    }
    entries.push(str(module), str(name), wasm.subarray(p, descEnd));
    p = descEnd;
  }
  if (p !== end) throw new Error('import section not fully read');
  const section = Buffer.concat(entries);
  parts.push(Buffer.from([2]), leb(section.length), section);
  at = end;
}

const out = Buffer.concat(parts);
new WebAssembly.Module(out); // still valid
writeFileSync(wasmPath, out);
writeFileSync(jsPath, js);
console.log(`short-names: ${renamed} imports and ${exported} exports renamed, wasm ${wasm.length} -> ${out.length} bytes`);
