// Packs an Optimizely UserEvent into the format of `core::packed`: every leaf is
// written as JSON.stringify would write it (so strings are escaped and numbers
// formatted exactly as JavaScript does), undefined leaves are empty, fields are joined
// by U+0001 and the attribute tokens by U+0002. The packer writes UTF-8 bytes straight
// into a growable byte buffer (no JS string is built); `packInto` + `copyPacked` then
// move them into wasm memory in one copy, `pack` decodes them for `unbatch`.
// Owns: the packed format on the JS side, the scratch buffers, the copy into wasm
// memory. Must not: import the wasm module or anything that does (the browser entry
// packs events before the wasm is ready), keep events, decide batching.
// Structural problems (a container that is not an object) are reported here; the rules
// for every leaf are checked in Rust.

import { fail, isObject, object } from './checks.js';

const SEP = 1;
const SUB = 2;
const QUOTE = 34;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** A scratch buffer that grew past this (a huge event) is not kept. */
const KEEP_BYTES = 64 * 1024;

/** Where the packer writes: `out[0..pos]` is written, `end` is `out.length`. */
let out = new Uint8Array(0);
let pos = 0;
let end = 0;

/** Makes room for `n` more bytes, growing `out` (by doubling) when needed. */
function room(n) {
  if (pos + n <= end) return;
  let size = Math.max(end * 2, 1024);
  while (size < pos + n) size *= 2;
  const bigger = new Uint8Array(size);
  bigger.set(out.subarray(0, pos));
  out = bigger;
  end = size;
}

function byte(b) {
  if (pos >= end) room(1);
  out[pos++] = b;
}

/** Text made of ASCII only (numbers, literals). */
function ascii(s) {
  const n = s.length;
  room(n);
  for (let i = 0; i < n; i++) out[pos + i] = s.charCodeAt(i);
  pos += n;
}

function utf8(s) {
  room(s.length * 3); // the most UTF-8 bytes a UTF-16 string can take
  pos += encoder.encodeInto(s, out.subarray(pos, end)).written;
}

/**
 * A string as JSON.stringify writes it, then the byte `sep` unless it is 0. Plain ASCII
 * (no quote, backslash or control character: nearly every id and key) is copied in one
 * loop; the rest of a string with anything else is escaped and encoded by `escaped`.
 */
function string(v, sep) {
  const n = v.length;
  room(n + 3);
  const o = out;
  const p = pos + 1;
  o[p - 1] = QUOTE;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c - 32 >>> 0 > 95 || c === QUOTE || c === 92) {
      pos = p + i;
      escaped(v, i, sep);
      return;
    }
    o[p + i] = c;
  }
  o[p + n] = QUOTE;
  if (sep) {
    o[p + n + 1] = sep;
    pos = p + n + 2;
  } else {
    pos = p + n + 1;
  }
}

/** The JSON escape letters of the control characters that have one (\b \t \n \f \r). */
const SHORT_ESCAPES = { 8: 98, 9: 116, 10: 110, 12: 102, 13: 114 };
const HEX = '0123456789abcdef';

/**
 * `v` from its index `i` on, as JSON.stringify writes it (escapes for the quote, the
 * backslash, control characters and lone surrogates, in lower-case hex), in UTF-8,
 * then the closing quote and `sep` (unless 0). In place: JSON.stringify built a string
 * that TextEncoder then encoded.
 */
function escaped(v, i, sep) {
  const n = v.length;
  room((n - i) * 6 + 2); // the most bytes one UTF-16 unit takes (`\u001f`)
  const o = out;
  let p = pos;
  for (; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 128) {
      if (c >= 32 && c !== QUOTE && c !== 92) {
        o[p++] = c;
      } else {
        o[p++] = 92;
        const letter = c === QUOTE || c === 92 ? c : SHORT_ESCAPES[c];
        if (letter !== undefined) {
          o[p++] = letter;
        } else {
          p = unicodeEscape(o, p, c);
        }
      }
    } else if (c < 0x800) {
      o[p++] = 0xc0 | (c >> 6);
      o[p++] = 0x80 | (c & 63);
    } else if (c < 0xd800 || c > 0xdfff) {
      o[p++] = 0xe0 | (c >> 12);
      o[p++] = 0x80 | ((c >> 6) & 63);
      o[p++] = 0x80 | (c & 63);
    } else {
      const d = c < 0xdc00 && i + 1 < n ? v.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        const u = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        o[p++] = 0xf0 | (u >> 18);
        o[p++] = 0x80 | ((u >> 12) & 63);
        o[p++] = 0x80 | ((u >> 6) & 63);
        o[p++] = 0x80 | (u & 63);
        i++;
      } else {
        // A lone surrogate.
        o[p++] = 92;
        p = unicodeEscape(o, p, c);
      }
    }
  }
  o[p++] = QUOTE;
  if (sep) o[p++] = sep;
  pos = p;
}

/** `u` and the four hex digits of `c` at `o[p]`; returns the position after them. */
function unicodeEscape(o, p, c) {
  o[p] = 117; // u
  o[p + 1] = HEX.charCodeAt(c >> 12);
  o[p + 2] = HEX.charCodeAt((c >> 8) & 15);
  o[p + 3] = HEX.charCodeAt((c >> 4) & 15);
  o[p + 4] = HEX.charCodeAt(c & 15);
  return p + 5;
}

/** JSON text (already escaped): copied as it is when ASCII, else encoded. */
function json(s) {
  const n = s.length;
  room(n);
  const o = out;
  const p = pos;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) {
      utf8(s);
      return;
    }
    o[p + i] = c;
  }
  pos = p + n;
}

/** A finite number as JSON.stringify writes it; integers (timestamps) without a string. */
function number(v) {
  if (!(v >= 0 && v < 1e15 && Math.floor(v) === v)) {
    ascii(String(v));
    return;
  }
  // Up to 15 digits as two int32 halves: int32 division is much cheaper than double.
  const hi = Math.floor(v / 1e8);
  if (hi === 0) {
    digits(v, 1);
  } else {
    digits(hi, 1);
    digits(v - hi * 1e8, 8);
  }
}

/** The decimal digits of the int32 `x` >= 0, zero-padded to at least `min` digits. */
function digits(x, min) {
  let n = 1;
  for (let y = x; y >= 10; y = (y / 10) | 0) n++;
  if (n < min) n = min;
  room(n);
  const o = out;
  for (let i = pos + n - 1; i >= pos; i--) {
    const q = (x / 10) | 0;
    o[i] = 48 + x - q * 10;
    x = q;
  }
  pos += n;
}

/** One leaf, then `sep` (0 for none). `field` names it in errors. */
function leaf(v, field, sep) {
  switch (typeof v) {
    case 'undefined':
      break;
    case 'string':
      string(v, sep);
      return;
    case 'number':
      if (!Number.isFinite(v)) throw fail(field, 'a finite number', v);
      number(v);
      break;
    case 'boolean':
      ascii(v ? 'true' : 'false');
      break;
    case 'object':
      // Objects are never valid leaves: Rust reports them by their first byte.
      ascii(v === null ? 'null' : Array.isArray(v) ? '[]' : '{}');
      break;
    default:
      throw fail(field, 'a string, number or boolean', v);
  }
  if (sep) byte(sep);
}

function newUuid() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  // Insecure browser contexts have getRandomValues but not randomUUID.
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The attribute tokens joined by SUB, then SEP. */
function attributes(list) {
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw fail('user.attributes', 'an array', list);
    const n = list.length;
    for (let i = 0; i < n; i++) {
      const a = list[i];
      // The field names are built only for an error.
      if (!isObject(a)) object(a, `user.attributes[${i}]`, false);
      attribute(a.entityId, i, 'entityId', SUB);
      attribute(a.key, i, 'key', SUB);
      attribute(a.value, i, 'value', i + 1 < n ? SUB : SEP);
    }
    if (n) return;
  }
  byte(SEP);
}

/**
 * One attribute member: `leaf`, with the valid cases first so that the field name
 * (`user.attributes[i].name`) is built only for a value `leaf` must look at.
 */
function attribute(v, i, name, sep) {
  const type = typeof v;
  if (type === 'string') {
    string(v, sep);
    return;
  }
  if (type === 'number' && Number.isFinite(v)) number(v);
  else if (type === 'boolean') ascii(v ? 'true' : 'false');
  else leaf(v, `user.attributes[${i}].${name}`, 0);
  byte(sep);
}

function tags(t) {
  if (t === null) {
    ascii('null');
  } else if (t !== undefined) {
    object(t, 'tags', true);
    let written;
    try {
      written = property(t, '', []);
    } catch (x) {
      let e = x;
      if (e === CYCLE) {
        // JSON.stringify's own message, which names the path of the cycle.
        try {
          JSON.stringify(t);
          e = new TypeError('Converting circular structure to JSON');
        } catch (y) {
          e = y;
        }
      }
      throw fail('tags', 'JSON-serializable (no cycles, no BigInt)', e.message);
    }
    // JSON.stringify gave undefined (a toJSON returning nothing): packing the text then
    // threw this TypeError, and still does.
    if (!written) json(undefined);
  }
}

// `tags` as JSON.stringify writes them, written straight into the buffer: the same steps
// (SerializeJSONProperty, ECMA-262 25.5.2.2) in the same order, so getters and toJSON run
// once each and in the same order, and the bytes are the same; JSON.stringify built a
// string that was then copied, and cost a third of the packing of a conversion. Beyond
// the spec's own steps only Object.getPrototypeOf is called (a boxed primitive is looked
// for only in an object whose prototype is not Object.prototype or null).

/** JSON of the member `key` (a string, or an array index) whose value is `v`; false for none. */
function property(v, key, stack) {
  const t = typeof v;
  if (v !== null && (t === 'object' || t === 'function' || t === 'bigint')) {
    const toJSON = v.toJSON;
    if (typeof toJSON === 'function') v = toJSON.call(v, typeof key === 'number' ? String(key) : key);
  }
  return value(v, stack);
}

/** JSON of `v` after its toJSON step; false when it has none (undefined, a function, a symbol). */
function value(v, stack) {
  switch (typeof v) {
    case 'string':
      string(v, 0);
      return true;
    case 'number':
      if (Number.isFinite(v)) number(v);
      else ascii('null');
      return true;
    case 'boolean':
      ascii(v ? 'true' : 'false');
      return true;
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
    case 'object':
      if (v === null) {
        ascii('null');
        return true;
      }
      break;
    default:
      return false;
  }
  if (Array.isArray(v)) {
    enter(v, stack);
    let n = v.length;
    if (typeof n !== 'number' || !(n >= 0 && n <= 0xffffffff)) n = toLength(n);
    byte(0x5b); // [
    for (let i = 0; i < n; i++) {
      if (i) byte(0x2c); // ,
      if (!property(v[i], i, stack)) ascii('null');
    }
    byte(0x5d); // ]
    stack.pop();
    return true;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    const p = unboxed(v);
    if (p !== v) return value(p, stack);
  }
  enter(v, stack);
  const keys = Object.keys(v);
  byte(0x7b); // {
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const mark = pos;
    if (!first) byte(0x2c);
    string(k, 0);
    byte(0x3a); // :
    if (property(v[k], k, stack)) first = false;
    else pos = mark;
  }
  byte(0x7d); // }
  stack.pop();
  return true;
}

/** Thrown for a cycle: `tags` then reports JSON.stringify's error for it. */
const CYCLE = {};

/** Pushes `v` on the stack of the objects being written; throws CYCLE if it is on it. */
function enter(v, stack) {
  if (stack.includes(v)) throw CYCLE;
  stack.push(v);
}

/** ToLength (an array's length). */
function toLength(x) {
  const n = Math.trunc(+x);
  return n > 0 ? Math.min(n, Number.MAX_SAFE_INTEGER) : 0;
}

/** The primitive in a Number, String, Boolean or BigInt object, or `v` itself. */
function unboxed(v) {
  if (slot(Number.prototype.valueOf, v)) return +v;
  if (slot(String.prototype.valueOf, v)) return `${v}`;
  if (slot(Boolean.prototype.valueOf, v)) return Boolean.prototype.valueOf.call(v);
  if (typeof BigInt === 'function' && slot(BigInt.prototype.valueOf, v)) return BigInt.prototype.valueOf.call(v);
  return v;
}

/** Whether `v` has the internal slot `valueOf` reads (it throws on anything else). */
function slot(valueOf, v) {
  try {
    valueOf.call(v);
    return true;
  } catch {
    return false;
  }
}

/**
 * The context of the last event copied into wasm memory (`copyPacked`): its eight
 * values and their packed bytes (each field with its SEP). Rust keeps the same bytes
 * (packer.rs): an event whose context values are `===` those is packed without its
 * context (`packInto` says so), and Rust puts the bytes back. Both sides change them
 * only in `copyPacked`, so an event that throws here, or is refused before the copy,
 * changes neither; `commits` counts the changes (see `packInto`).
 */
let lastContext = null;
let lastContextBytes = null;
let commits = 0;

/**
 * What `packEvent` did with the context, for `packInto` (saved around a nested pack
 * like the buffer): `ctxSame` when it left it out (then `ctxBytes` and `ctxCommits`
 * are what it relied on), else `ctxLen` bytes of packed context; `ctxValues` either way.
 */
let ctxSame = false;
let ctxValues = null;
let ctxLen = 0;
let ctxBytes = null;
let ctxCommits = 0;

/**
 * Writes one packed UserEvent; throws a TypeError naming the field for a structural
 * problem. With `cached`, a context equal to the last one copied is left out.
 */
function packEvent(e, cached) {
  object(e, 'event', false);
  const c = object(e.context, 'context', false);
  const u = object(e.user, 'user', false);
  const uuid = e.uuid === undefined || e.uuid === null ? newUuid() : e.uuid;
  const region = c.region;
  const accountId = c.accountId;
  const projectId = c.projectId;
  const revision = c.revision;
  const clientName = c.clientName;
  const clientVersion = c.clientVersion;
  const anonymizeIP = c.anonymizeIP;
  const botFiltering = c.botFiltering;
  const k = lastContext;
  if (
    cached &&
    k !== null &&
    region === k[0] &&
    accountId === k[1] &&
    projectId === k[2] &&
    revision === k[3] &&
    clientName === k[4] &&
    clientVersion === k[5] &&
    anonymizeIP === k[6] &&
    botFiltering === k[7]
  ) {
    ctxSame = true;
    ctxValues = k;
    ctxBytes = lastContextBytes;
    ctxCommits = commits;
  } else {
    leaf(region, 'context.region', SEP);
    leaf(accountId, 'context.accountId', SEP);
    leaf(projectId, 'context.projectId', SEP);
    leaf(revision, 'context.revision', SEP);
    leaf(clientName, 'context.clientName', SEP);
    leaf(clientVersion, 'context.clientVersion', SEP);
    leaf(anonymizeIP, 'context.anonymizeIP', SEP);
    leaf(botFiltering, 'context.botFiltering', SEP);
    ctxSame = false;
    ctxValues = [region, accountId, projectId, revision, clientName, clientVersion, anonymizeIP, botFiltering];
    ctxLen = pos - 1;
  }
  leaf(e.type, 'type', SEP);
  leaf(uuid, 'uuid', SEP);
  // Filled here, on the wall clock: the wasm side measures time on performance.now().
  leaf(e.timestamp === undefined || e.timestamp === null ? Date.now() : e.timestamp, 'timestamp', SEP);
  leaf(u.id, 'user.id', SEP);
  attributes(u.attributes);
  if (e.type === 'conversion') {
    const ev = object(e.event, 'event', false);
    leaf(ev.id, 'event.id', SEP);
    leaf(ev.key, 'event.key', SEP);
    leaf(e.revenue, 'revenue', SEP);
    leaf(e.value, 'value', SEP);
    tags(e.tags);
    return;
  }
  const layer = object(e.layer, 'layer', true);
  const experiment = object(e.experiment, 'experiment', true);
  const variation = object(e.variation, 'variation', true);
  leaf(layer?.id, 'layer.id', SEP);
  leaf(experiment?.id, 'experiment.id', SEP);
  if (variation) byte(0x31); // '1'
  byte(SEP);
  leaf(variation?.id, 'variation.id', SEP);
  leaf(variation?.key, 'variation.key', SEP);
  leaf(e.ruleKey, 'ruleKey', SEP);
  leaf(e.flagKey, 'flagKey', SEP);
  leaf(e.ruleType, 'ruleType', SEP);
  leaf(e.enabled, 'enabled', SEP);
  leaf(e.cmabUuid, 'cmabUuid', 0);
}

/** The buffer the last `packWith` wrote into (`target`, or a larger one). */
let written = out;

/**
 * Packs `e` into `target` (grown if needed); returns the length of the packed bytes,
 * which are at the start of `written`. The state of the packer is saved around the
 * call: a getter on the event may re-enter the processor and pack another event.
 */
function packWith(e, target, cached) {
  const o = out;
  const p = pos;
  const n = end;
  const same = ctxSame;
  const values = ctxValues;
  const len = ctxLen;
  const bytes = ctxBytes;
  const seen = ctxCommits;
  out = target;
  pos = 0;
  end = target.length;
  try {
    packEvent(e, cached);
    written = out;
    return pos;
  } finally {
    out = o;
    pos = p;
    end = n;
    packedSame = ctxSame;
    packedValues = ctxValues;
    packedLen = ctxLen;
    packedBytes = ctxBytes;
    packedCommits = ctxCommits;
    ctxSame = same;
    ctxValues = values;
    ctxLen = len;
    ctxBytes = bytes;
    ctxCommits = seen;
  }
}

/** Packs one UserEvent into a string (for `unbatch`), context included. */
export function pack(e) {
  const n = packWith(e, new Uint8Array(1024), false);
  return decoder.decode(written.subarray(0, n));
}

/** The scratch buffer `packInto` writes into, and whether a `packInto` is running. */
let scratch = new Uint8Array(4096);
let packing = false;
/** The bytes of the last `packInto`, for `copyPacked`, and what it did with the context. */
let packed = scratch.subarray(0, 0);
let packedSame = false;
let packedValues = null;
let packedLen = 0;
let packedBytes = null;
let packedCommits = 0;
/** What the last `packInto` threw (a TypeError naming the field), for `takePackError`. */
let packError;

/**
 * Packs one UserEvent and returns its length in bytes (`copyPacked` then moves the
 * bytes into wasm memory), `-2 - length` when its context was left out (it is the last
 * one copied), or -1 when the event is invalid (`takePackError` tells why). Nothing is
 * thrown across the boundary: wasm-bindgen's catching wrapper costs a closure per call.
 */
export function packInto(e) {
  // A getter that re-enters the processor packs into a buffer of its own.
  const reentered = packing;
  packing = true;
  try {
    let n = packWith(e, reentered ? new Uint8Array(1024) : scratch, true);
    if (!reentered && written.length <= KEEP_BYTES) scratch = written;
    packed = written.subarray(0, n);
    if (packedSame && packedCommits !== commits) {
      // A getter packed and copied an event with another context after this one's was
      // left out: put it back (the bytes it was compared against).
      const full = new Uint8Array(packedBytes.length + n);
      full.set(packedBytes);
      full.set(packed, packedBytes.length);
      packed = full;
      packedSame = false;
      packedLen = packedBytes.length - 1;
      n = full.length;
    }
    return packedSame ? -2 - n : n;
  } catch (x) {
    packError = x;
    return -1;
  } finally {
    packing = reentered;
  }
}

let memory = null;
let view = new Uint8Array(0);

/** The wasm module's memory, which `copyPacked` writes into. */
export function useMemory(m) {
  memory = m;
}

/**
 * Copies the bytes of the last `packInto` into wasm memory at `at`. Returns the length
 * of their packed context (without its last SEP), which becomes the one a later event
 * may leave out (Rust keeps those bytes too), or 0 when the context was left out.
 */
export function copyPacked(at) {
  // Growing wasm memory detaches its buffer, and a view of a detached buffer is empty:
  // cheaper to test than reading memory.buffer for every event.
  if (view.length === 0) view = new Uint8Array(memory.buffer);
  view.set(packed, at);
  if (packedSame) return 0;
  lastContext = packedValues;
  lastContextBytes = packed.slice(0, packedLen + 1);
  commits++;
  return packedLen;
}

/** The error of the last `packInto` that returned -1. */
export function takePackError() {
  const e = packError;
  packError = undefined;
  return e;
}
