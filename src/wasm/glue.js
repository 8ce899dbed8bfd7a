// Packs an Optimizely UserEvent into the format of `core::packed`: every leaf is
// written as JSON.stringify would write it (so strings are escaped and numbers
// formatted exactly as JavaScript does), undefined leaves are empty, fields are joined
// by U+0001 and the attribute tokens by U+0002. The packer writes UTF-8 bytes straight
// into a growable byte buffer (no JS string is built); `packInto` + `copyPacked` then
// move them into wasm memory in one copy, `pack` decodes them for `unbatch`.
// Structural problems (a container that is not an object) are reported here; the rules
// for every leaf are checked in Rust.

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

/** A value as error messages show it: strings quoted, the rest as `String(v)`. */
export function show(v) {
  if (typeof v === 'function') return 'a function';
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(v);
  } catch {
    return typeof v;
  }
}

function fail(field, rule, got) {
  return new TypeError(`${field} must be ${rule}, got ${show(got)}`);
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
 * A string as JSON.stringify writes it. Plain ASCII (no quote, backslash or control
 * character: nearly every id and key) is copied in one loop; anything else goes
 * through JSON.stringify, which also escapes lone surrogates.
 */
function string(v) {
  const n = v.length;
  room(n + 2);
  const o = out;
  let p = pos;
  o[p++] = QUOTE;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 32 || c === QUOTE || c === 92 || c > 127) {
      utf8(JSON.stringify(v));
      return;
    }
    o[p++] = c;
  }
  o[p] = QUOTE;
  pos = p + 1;
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
      string(v);
      break;
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

/** `true` for an object that is not an array (what every container of an event must be). */
function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function object(v, field, optional) {
  if (isObject(v)) return v;
  if (optional && (v === undefined || v === null)) return undefined;
  throw fail(field, optional ? 'an object, null or undefined' : 'an object', v);
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

function attributes(list) {
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw fail('user.attributes', 'an array', list);
    for (let i = 0; i < list.length; i++) {
      const a = list[i];
      // The field names are built only for an error.
      if (!isObject(a)) object(a, `user.attributes[${i}]`, false);
      if (i) byte(SUB);
      attribute(a.entityId, i, 'entityId', SUB);
      attribute(a.key, i, 'key', SUB);
      attribute(a.value, i, 'value', 0);
    }
  }
  byte(SEP);
}

/**
 * One attribute member: `leaf`, with the valid cases first so that the field name
 * (`user.attributes[i].name`) is built only for a value `leaf` must look at.
 */
function attribute(v, i, name, sep) {
  const type = typeof v;
  if (type === 'string') string(v);
  else if (type === 'number' && Number.isFinite(v)) number(v);
  else if (type === 'boolean') ascii(v ? 'true' : 'false');
  else leaf(v, `user.attributes[${i}].${name}`, 0);
  if (sep) byte(sep);
}

function tags(t) {
  if (t === null) {
    ascii('null');
  } else if (t !== undefined) {
    object(t, 'tags', true);
    let text;
    try {
      text = JSON.stringify(t);
    } catch (e) {
      throw fail('tags', 'JSON-serializable (no cycles, no BigInt)', e.message);
    }
    json(text);
  }
}

/** Writes one packed UserEvent; throws a TypeError naming the field for a structural problem. */
function packEvent(e) {
  object(e, 'event', false);
  const c = object(e.context, 'context', false);
  const u = object(e.user, 'user', false);
  const uuid = e.uuid === undefined || e.uuid === null ? newUuid() : e.uuid;
  leaf(c.region, 'context.region', SEP);
  leaf(c.accountId, 'context.accountId', SEP);
  leaf(c.projectId, 'context.projectId', SEP);
  leaf(c.revision, 'context.revision', SEP);
  leaf(c.clientName, 'context.clientName', SEP);
  leaf(c.clientVersion, 'context.clientVersion', SEP);
  leaf(c.anonymizeIP, 'context.anonymizeIP', SEP);
  leaf(c.botFiltering, 'context.botFiltering', SEP);
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
function packWith(e, target) {
  const o = out;
  const p = pos;
  const n = end;
  out = target;
  pos = 0;
  end = target.length;
  try {
    packEvent(e);
    written = out;
    return pos;
  } finally {
    out = o;
    pos = p;
    end = n;
  }
}

/** Packs one UserEvent into a string (for `unbatch`). */
export function pack(e) {
  const n = packWith(e, new Uint8Array(1024));
  return decoder.decode(written.subarray(0, n));
}

/** The scratch buffer `packInto` writes into, and whether a `packInto` is running. */
let scratch = new Uint8Array(4096);
let packing = false;
/** The bytes of the last `packInto`, for `copyPacked`. */
let packed = scratch.subarray(0, 0);
/** What the last `packInto` threw (a TypeError naming the field), for `takePackError`. */
let packError;

/**
 * Packs one UserEvent and returns its length in bytes (`copyPacked` then moves the
 * bytes into wasm memory), or -1 when the event is invalid (`takePackError` tells
 * why). Nothing is thrown across the boundary: wasm-bindgen's catching wrapper costs a
 * closure per call.
 */
export function packInto(e) {
  // A getter that re-enters the processor packs into a buffer of its own.
  const reentered = packing;
  packing = true;
  try {
    const n = packWith(e, reentered ? new Uint8Array(1024) : scratch);
    if (!reentered && written.length <= KEEP_BYTES) scratch = written;
    packed = written.subarray(0, n);
    return n;
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

/** Copies the bytes of the last `packInto` into wasm memory at `at`. */
export function copyPacked(at) {
  if (view.buffer !== memory.buffer) view = new Uint8Array(memory.buffer);
  view.set(packed, at);
}

/** The error of the last `packInto` that returned -1. */
export function takePackError() {
  const e = packError;
  packError = undefined;
  return e;
}

/** The LogEvent handed to listeners and dispatchers; `params` is parsed on first use. */
export function makeLogEvent(url, body) {
  let params;
  return {
    url,
    httpVerb: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
    get params() {
      if (params === undefined) params = JSON.parse(body);
      return params;
    },
  };
}

const BOT_FILTERING = '$opt_bot_filtering';
const EU_ENDPOINT = 'https://eu.logx.optimizely.com/v1/events';

/**
 * Takes apart an already formatted Optimizely LogEvent (`{ url, httpVerb, params }`, as
 * any Optimizely SDK's event processor emits it) into packed UserEvents, one per
 * event, so that they are batched again with everything else. Re-batching them
 * renders the same visitor JSON the SDK would have sent.
 */
let unbatched = [];

const WIRE = {
  'context.region': () => 'logEvent.url',
  'context.accountId': () => 'logEvent.params.account_id',
  'context.projectId': () => 'logEvent.params.project_id',
  'context.revision': () => 'logEvent.params.revision',
  'context.clientName': () => 'logEvent.params.client_name',
  'context.clientVersion': () => 'logEvent.params.client_version',
  'context.anonymizeIP': () => 'logEvent.params.anonymize_ip',
  'context.botFiltering': (w) => `${w.visitor}.attributes[${w.bot}].value`,
  'user.id': (w) => `${w.visitor}.visitor_id`,
  uuid: (w) => `${w.event}.uuid`,
  timestamp: (w) => `${w.event}.timestamp`,
  'layer.id': (w) => `${w.decision}.campaign_id`,
  'experiment.id': (w) => `${w.decision}.experiment_id`,
  'variation.id': (w) => `${w.decision}.variation_id`,
  'variation.key': (w) => `${w.decision}.metadata.variation_key`,
  ruleKey: (w) => `${w.decision}.metadata.rule_key`,
  flagKey: (w) => `${w.decision}.metadata.flag_key`,
  ruleType: (w) => `${w.decision}.metadata.rule_type`,
  enabled: (w) => `${w.decision}.metadata.enabled`,
  cmabUuid: (w) => `${w.decision}.metadata.cmab_uuid`,
  'event.id': (w) => `${w.event}.entity_id`,
  'event.key': (w) => `${w.event}.key`,
  revenue: (w) => `${w.event}.revenue`,
  value: (w) => `${w.event}.value`,
  tags: (w) => `${w.event}.tags`,
};

/** The LogEvent path of a UserEvent field of the event found at `where`. */
function wirePath(where, field) {
  const attr = /^user\.attributes\[(\d+)\]\.(entityId|key|value)$/.exec(field);
  if (attr) return `${where.visitor}.attributes[${attr[1]}].${{ entityId: 'entity_id', key: 'key', value: 'value' }[attr[2]]}`;
  return WIRE[field] ? WIRE[field](where) : field;
}

/**
 * The LogEvent path of a UserEvent field of the `index`-th event of the last
 * `unbatch`, so that errors name what the caller passed
 * (`logEvent.params.visitors[0].visitor_id`, not `user.id`).
 */
export function wireField(index, field) {
  return unbatched[index] ? wirePath(unbatched[index], field) : field;
}

/** `pack`, with a structural error renamed to the LogEvent path of its field. */
function packAt(where, event) {
  unbatched.push(where);
  try {
    return pack(event);
  } catch (e) {
    const m = /^(\S+) must be /.exec(e.message);
    if (e instanceof TypeError && m) throw new TypeError(wirePath(where, m[1]) + e.message.slice(m[1].length));
    throw e;
  }
}

export function unbatch(logEvent) {
  unbatched = [];
  object(logEvent, 'logEvent', false);
  const b = object(logEvent.params, 'logEvent.params', false);
  if (!Array.isArray(b.visitors)) throw fail('logEvent.params.visitors', 'an array', b.visitors);
  const region = logEvent.url === EU_ENDPOINT ? 'EU' : undefined;
  const packed = [];
  b.visitors.forEach((visitor, vi) => {
    const where = `logEvent.params.visitors[${vi}]`;
    const v = object(visitor, where, false);
    const attrs = v.attributes === undefined ? [] : v.attributes;
    if (!Array.isArray(attrs)) throw fail(`${where}.attributes`, 'an array', attrs);
    let botFiltering;
    let userAttrs = attrs;
    const last = attrs[attrs.length - 1];
    if (last && last.entity_id === BOT_FILTERING && last.key === BOT_FILTERING) {
      botFiltering = last.value;
      userAttrs = attrs.slice(0, -1);
    }
    const context = {
      region,
      accountId: b.account_id,
      projectId: b.project_id,
      revision: b.revision,
      clientName: b.client_name,
      clientVersion: b.client_version,
      anonymizeIP: b.anonymize_ip,
      botFiltering,
    };
    const user = {
      id: v.visitor_id,
      attributes: userAttrs.map((a, ai) => {
        const at = object(a, `${where}.attributes[${ai}]`, false);
        return { entityId: at.entity_id, key: at.key, value: at.value };
      }),
    };
    if (!Array.isArray(v.snapshots)) throw fail(`${where}.snapshots`, 'an array', v.snapshots);
    v.snapshots.forEach((snapshot, si) => {
      const s = object(snapshot, `${where}.snapshots[${si}]`, false);
      if (!Array.isArray(s.events)) throw fail(`${where}.snapshots[${si}].events`, 'an array', s.events);
      if (s.decisions !== undefined) {
        if (!Array.isArray(s.decisions) || s.decisions.length !== 1 || s.events.length !== 1) {
          throw fail(`${where}.snapshots[${si}]`, 'a decision snapshot with one decision and one event', `${s.decisions?.length} decisions`);
        }
        const d = object(s.decisions[0], `${where}.snapshots[${si}].decisions[0]`, false);
        const e = object(s.events[0], `${where}.snapshots[${si}].events[0]`, false);
        const m = object(d.metadata, `${where}.snapshots[${si}].decisions[0].metadata`, true) || {};
        const at = { visitor: where, decision: `${where}.snapshots[${si}].decisions[0]`, event: `${where}.snapshots[${si}].events[0]`, bot: attrs.length - 1 };
        packed.push(packAt(at, {
          type: 'impression', uuid: e.uuid, timestamp: e.timestamp, context, user,
          // campaign_id = layer || experiment || null on the way out: a layer id equal to
          // the campaign id and the experiment id as sent render the same JSON again.
          layer: { id: d.campaign_id },
          experiment: { id: d.experiment_id },
          variation: { id: d.variation_id, key: m.variation_key },
          ruleKey: m.rule_key, flagKey: m.flag_key, ruleType: m.rule_type,
          enabled: m.enabled, cmabUuid: m.cmab_uuid,
        }));
      } else {
        s.events.forEach((event, ei) => {
          const e = object(event, `${where}.snapshots[${si}].events[${ei}]`, false);
          const at = { visitor: where, event: `${where}.snapshots[${si}].events[${ei}]`, bot: attrs.length - 1 };
          packed.push(packAt(at, {
            type: 'conversion', uuid: e.uuid, timestamp: e.timestamp, context, user,
            event: { id: e.entity_id, key: e.key },
            revenue: e.revenue, value: e.value, tags: e.tags,
          }));
        });
      }
    });
  });
  return packed;
}

/**
 * Browsers only (detected at run time): calls `onHide` when the page is hidden or
 * being left (`visibilitychange` to hidden, `pagehide`). Returns a function that
 * removes the listeners, or undefined where there is no page. No `unload` listener:
 * it would keep the page out of the back/forward cache.
 */
export function watchPage(onHide) {
  const doc = globalThis.document;
  if (!doc || typeof doc.addEventListener !== 'function' || typeof globalThis.addEventListener !== 'function') {
    return undefined;
  }
  const onVisibility = () => {
    if (doc.visibilityState === 'hidden') onHide();
  };
  doc.addEventListener('visibilitychange', onVisibility);
  globalThis.addEventListener('pagehide', onHide);
  return () => {
    doc.removeEventListener('visibilitychange', onVisibility);
    globalThis.removeEventListener('pagehide', onHide);
  };
}

function sameOrigin(url) {
  try {
    return new URL(url, globalThis.location.href).origin === globalThis.location.origin;
  } catch {
    return false;
  }
}

function bodyType(url) {
  return sameOrigin(url) ? 'application/json' : 'text/plain;charset=UTF-8';
}

/**
 * Queues a body with `navigator.sendBeacon` while the page goes away; `true` when the
 * browser took it. To another origin the body goes as `text/plain`, a CORS-safelisted
 * type: Chromium refuses a cross-origin beacon whose type is application/json.
 */
export function sendBeacon(url, body) {
  const nav = globalThis.navigator;
  try {
    return Boolean(nav && typeof nav.sendBeacon === 'function' && nav.sendBeacon(url, new Blob([body], { type: bodyType(url) })));
  } catch {
    return false;
  }
}

/**
 * The fallback when a beacon is refused: a `keepalive` fetch (also `text/plain` across
 * origins: a preflighted keepalive request can be lost silently). Resolves with true on
 * a 2xx.
 */
export function keepalive(url, body) {
  try {
    // Redirects are not followed (see dispatch.rs); the body is never read.
    const init = { method: 'POST', body, headers: { 'Content-Type': bodyType(url) }, keepalive: true, redirect: 'manual' };
    return fetch(url, init).then(
      (r) => {
        r.body?.cancel().catch(() => {});
        return r.ok;
      },
      () => false,
    );
  } catch {
    return Promise.resolve(false);
  }
}

/** `true` in a browser that knows it is offline (`navigator.onLine === false`). */
export function isOffline() {
  return globalThis.navigator?.onLine === false;
}

/** Calls `onOnline` when the browser comes back online; returns a remover, or undefined. */
export function watchOnline(onOnline) {
  if (typeof globalThis.addEventListener !== 'function' || !globalThis.navigator || !('onLine' in globalThis.navigator)) {
    return undefined;
  }
  globalThis.addEventListener('online', onOnline);
  return () => globalThis.removeEventListener('online', onOnline);
}

const STORE_PREFIX = 'bep:v1:';

/**
 * Where unconfirmed batches are kept across reloads: `localStorage` by default in
 * browsers, or any `{ getItem, setItem, removeItem }` (plus `key(i)`/`length` to be
 * able to find entries again). Every failure (quota, Safari private mode, corrupted
 * data) is counted and otherwise ignored: processing goes on in memory.
 */
export class BatchStore {
  constructor(storage, maxBytes, ttlMs) {
    this.storage = storage;
    this.maxBytes = maxBytes;
    this.ttlMs = ttlMs;
    this.errors = 0;
    this.bytes = 0;
    this.sizes = new Map();
    this.tab = Math.random().toString(36).slice(2);
    this.beat();
  }

  /** Marks this tab alive: its batches are not recovered by other tabs. */
  beat() {
    try {
      this.storage.setItem(`${STORE_PREFIX}alive:${this.tab}`, String(Date.now()));
    } catch {
      this.errors++;
    }
  }

  /** This page is going away: its unconfirmed batches may be recovered at once. */
  leave() {
    try {
      this.storage.removeItem(`${STORE_PREFIX}alive:${this.tab}`);
    } catch {
      this.errors++;
    }
  }

  /** The default store: `localStorage` where it exists and works, else none. */
  static open(option, maxBytes, ttlMs) {
    if (option === false) return undefined;
    let storage = option;
    if (storage === undefined || storage === null || storage === true) {
      try {
        storage = globalThis.document ? globalThis.localStorage : undefined;
      } catch {
        storage = undefined; // a SecurityError where storage is disabled
      }
      if (!storage) return undefined;
    }
    for (const m of ['getItem', 'setItem', 'removeItem']) {
      if (typeof storage[m] !== 'function') throw fail('storage', 'false or an object with getItem, setItem and removeItem', storage);
    }
    return new BatchStore(storage, maxBytes, ttlMs);
  }

  /** Keeps a batch until `remove(id)`; false when it was not stored (cap, quota). */
  save(id, url, body) {
    const key = `${STORE_PREFIX}batch:${this.tab}:${id}`;
    const value = JSON.stringify({ t: Date.now(), url, body });
    const size = (key.length + value.length) * 2; // UTF-16, as browsers count quota
    if (this.bytes + size > this.maxBytes) return false;
    try {
      this.storage.setItem(key, value);
      this.sizes.set(id, size);
      this.bytes += size;
      return true;
    } catch {
      this.errors++;
      return false;
    }
  }

  remove(id) {
    const size = this.sizes.get(id);
    if (size === undefined) return;
    this.sizes.delete(id);
    this.bytes -= size;
    try {
      this.storage.removeItem(`${STORE_PREFIX}batch:${this.tab}:${id}`);
    } catch {
      this.errors++;
    }
  }

  /**
   * Takes every batch that a page which is gone (left, reloaded, crashed: its alive
   * mark is missing or older than `staleMs`) left behind, removing it from storage so
   * that no other tab sends it too, and calls `take(url, body)` for each. Expired or
   * corrupted entries are dropped. With Web Locks the take is exclusive across tabs;
   * without, an entry is taken by the tab that still finds it when removing it.
   */
  recover(take, staleMs) {
    const run = () => {
      const keys = [];
      try {
        const alive = (tab) => {
          const t = Number(this.storage.getItem(`${STORE_PREFIX}alive:${tab}`));
          return t > 0 && Date.now() - t < staleMs;
        };
        const prefix = `${STORE_PREFIX}batch:`;
        for (let i = 0; i < this.storage.length; i++) {
          const k = this.storage.key(i);
          if (!k || !k.startsWith(prefix)) continue;
          const tab = k.slice(prefix.length, k.lastIndexOf(':'));
          if (tab !== this.tab && !alive(tab)) keys.push(k);
        }
        // Alive marks of tabs long gone.
        for (let i = this.storage.length - 1; i >= 0; i--) {
          const k = this.storage.key(i);
          if (k && k.startsWith(`${STORE_PREFIX}alive:`) && Date.now() - Number(this.storage.getItem(k)) > this.ttlMs) this.storage.removeItem(k);
        }
      } catch {
        this.errors++;
        return;
      }
      for (const k of keys) {
        let raw;
        try {
          raw = this.storage.getItem(k);
          if (raw === null) continue; // another tab took it
          this.storage.removeItem(k);
        } catch {
          this.errors++;
          continue;
        }
        let entry;
        try {
          entry = JSON.parse(raw);
        } catch {
          this.errors++;
          continue;
        }
        if (!entry || typeof entry.url !== 'string' || typeof entry.body !== 'string') {
          this.errors++;
          continue;
        }
        if (Date.now() - entry.t > this.ttlMs) continue;
        try {
          take(entry.url, entry.body);
        } catch {
          this.errors++;
        }
      }
    };
    const locks = globalThis.navigator?.locks;
    if (locks && typeof locks.request === 'function') {
      return locks.request('bep:v1:recover', run).catch(() => {
        this.errors++;
      });
    }
    run();
    return Promise.resolve();
  }
}

/** `true` in Cloudflare Workers (workerd), where a promise must not wait on another request's I/O. */
export function inWorkers() {
  return globalThis.navigator?.userAgent === 'Cloudflare-Workers';
}
