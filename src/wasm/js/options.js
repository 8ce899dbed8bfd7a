// Owns the options of `new BatchEventProcessor(options)`: every rule, every TypeError
// message and every default, in this one place. `validOptions` returns a plain object
// with every field present; the Rust side (src/wasm/options.rs) only reads it, and the
// browser entry can call it before the wasm is instantiated. Must not: import the wasm
// module or anything that does; hold state; read the environment (storage, page).

import { show } from './checks.js';

/** The longest delay `setTimeout` takes (2^31 - 1 ms): longer ones fire at once. */
const MAX_MS = 2147483647;
const MAX_INT = Number.MAX_SAFE_INTEGER;
const MS = 'a number of ms from 0 to ' + MAX_MS;

/**
 * The defaults, as the README options table and the `.d.ts` state them. The core's
 * `Config::default()` holds the same values (tests/web.rs checks they agree).
 */
export const DEFAULTS = {
  batchSize: 10,
  flushInterval: 30000,
  maxQueueSize: 2000,
  /** 8 MiB (the core's DEFAULT_MAX_QUEUE_BYTES: it says why). */
  maxQueueBytes: 8388608,
  maxPayloadBytes: 3500000,
  maxRetries: 10,
  initialBackoff: 500,
  maxBackoff: 30000,
  dispatchTimeout: 10000,
  closeTimeout: 15000,
  /** 1 MB, a fifth of the usual 5 MB origin quota: the site's own use is never crowded out. */
  maxStorageBytes: 1000000,
  /** 7 days. */
  storageTtl: 604800000,
};

/** What was given, as messages show it (objects by their kind, not their text). */
function got(v) {
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return 'an array';
  return v !== null && typeof v === 'object' ? 'an object' : show(v);
}

function bad(field, rule, v) {
  return new TypeError(`${field} must be ${rule}, got ${got(v)}`);
}

/** `true` for null and undefined: the option takes its default. */
const unset = (v) => v === undefined || v === null;

/**
 * The number `field` (`retry.maxRetries` is read as `maxRetries` of `o`): from `lo`
 * to `hi` (an integer when `int`), or its default when unset.
 */
function number(o, field, rule, lo, hi, int) {
  const key = field.slice(field.indexOf('.') + 1);
  const v = o[key];
  if (unset(v)) return DEFAULTS[key];
  if (typeof v !== 'number' || !(v >= lo && v <= hi) || (int && !Number.isInteger(v))) throw bad(field, rule, v);
  return v;
}

function func(o, key) {
  const v = o[key];
  if (unset(v)) return undefined;
  if (typeof v !== 'function') throw bad(key, 'a function', v);
  return v;
}

/** `endpoint`: an http(s) URL that `fetch` can use, or undefined. */
function endpoint(v) {
  if (unset(v)) return undefined;
  const rule = 'an http:// or https:// URL';
  let url;
  try {
    url = typeof v === 'string' ? new URL(v) : undefined;
  } catch {
    // not a URL
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.host) throw bad('endpoint', rule, v);
  // fetch() throws on a URL with credentials: every send would fail. The password is
  // not repeated in the message.
  if (url.username || url.password) {
    throw new TypeError(`endpoint must be ${rule} without credentials (fetch refuses user:password@), got a URL with credentials`);
  }
  return v;
}

/** `retry`: false (never retry), true/unset (defaults) or an object overriding some. */
function retry(r, out) {
  if (r === false) {
    out.maxRetries = 0;
    out.initialBackoff = 0;
    out.maxBackoff = 0;
    return;
  }
  if (unset(r) || r === true) r = {};
  else if (typeof r !== 'object' || Array.isArray(r)) throw bad('retry', 'false or an object', r);
  out.maxRetries = number(r, 'retry.maxRetries', 'an integer from 0 to 1000', 0, 1000, true);
  out.initialBackoff = number(r, 'retry.initialBackoff', MS, 0, MAX_MS);
  out.maxBackoff = number(r, 'retry.maxBackoff', MS, 0, MAX_MS);
}

/** `storage`: false, unset (localStorage in browsers) or a Storage-like object. */
function storage(v) {
  if (unset(v) || typeof v === 'boolean') return v === false ? false : undefined;
  for (const m of ['getItem', 'setItem', 'removeItem']) {
    if (typeof v[m] !== 'function') throw bad('storage', 'false or an object with getItem, setItem and removeItem', v);
  }
  return v;
}

/**
 * Validates the options given to the constructor; throws a TypeError naming the first
 * field that breaks its rule. Returns every option, defaults filled in, `retry` as
 * `maxRetries`/`initialBackoff`/`maxBackoff`, `endpoint` undefined for "per region",
 * `storage` undefined for "localStorage where there is a page".
 */
export function validOptions(o) {
  if (unset(o)) o = {};
  if (typeof o !== 'object' || Array.isArray(o)) throw bad('options', 'an object', o);
  const INT1 = 'an integer >= 1';
  const out = {
    batchSize: number(o, 'batchSize', INT1, 1, MAX_INT, true),
    maxQueueSize: number(o, 'maxQueueSize', INT1, 1, MAX_INT, true),
    maxQueueBytes: number(o, 'maxQueueBytes', INT1, 1, MAX_INT, true),
    maxPayloadBytes: number(o, 'maxPayloadBytes', 'an integer from 1 to 3500000', 1, 3500000, true),
    flushInterval: number(o, 'flushInterval', 'a finite number > 0 (ms)', Number.MIN_VALUE, Number.MAX_VALUE),
  };
  if (out.flushInterval > MAX_MS) {
    throw bad('flushInterval', `at most ${MAX_MS} (ms, the longest timer delay)`, out.flushInterval);
  }
  retry(o.retry, out);
  out.dispatchTimeout = number(o, 'dispatchTimeout', 'a number of ms from 1 to ' + MAX_MS, 1, MAX_MS);
  out.maxStorageBytes = number(o, 'maxStorageBytes', 'a number of bytes from 0 to 5000000', 0, 5000000);
  out.storageTtl = number(o, 'storageTtl', 'a number of ms from 0 to 2592000000', 0, 2592000000);
  out.closeTimeout = number(o, 'closeTimeout', MS, 0, MAX_MS);
  out.endpoint = endpoint(o.endpoint);
  out.dispatcher = func(o, 'dispatcher');
  out.waitUntil = func(o, 'waitUntil');
  const hide = o.flushOnHide;
  if (!unset(hide) && typeof hide !== 'boolean') throw bad('flushOnHide', 'a boolean', hide);
  out.flushOnHide = hide !== false;
  out.storage = storage(o.storage);
  return out;
}

/** The deadline of `close(options)`: `options.timeout` in ms, or `dflt` (closeTimeout). */
export function closeTimeout(o, dflt) {
  const v = unset(o) ? undefined : o.timeout;
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v >= 0 && v <= MAX_MS)) {
    throw new TypeError(`close() options.timeout must be ${MS}, got ${show(v)}`);
  }
  return v;
}
