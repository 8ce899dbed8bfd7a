// Browsers, before the wasm module is ready: keeps the packed events a processor
// accepted in storage when the page is hidden or left, when the module cannot load, or
// when `close()` gives up waiting for it, so that a later page sends them. One entry
// per processor (`bep:v1:early:<id>` = `{ t, events: [packed event or LogEvent copy...] }`), rewritten as its
// queue grows; whoever removes an entry owns its events (the page itself when its module
// becomes ready, or the first ready processor of a later page), so no event is sent
// twice. Must not: import the wasm glue (dist/bep.js; the glue module storage.js is
// fine), validate events, send anything.

const PREFIX = 'bep:v1:early:';
const LOCK = 'bep:v1:recover';
/** Keys of the entries of this page's processors: never recovered by this page. */
const own = new Set();

/** The Storage the `storage` option names (the one the wasm side's BatchStore.open picks), or undefined. */
export { storageOf } from './dist/glue/storage.js';

/** Runs `f` under the cross-tab recovery lock where Web Locks exist (else at once). */
export function exclusive(f) {
  const locks = globalThis.navigator && globalThis.navigator.locks;
  if (locks && typeof locks.request === 'function') return locks.request(LOCK, f).catch(() => f());
  return Promise.resolve().then(f);
}

/** The entry of one early processor. */
export class EarlyEntry {
  /** `orphan`: events handed back by a closed processor, which any processor may take. */
  constructor(storage, maxBytes, orphan = false) {
    this.storage = storage;
    this.maxBytes = maxBytes;
    this.key = PREFIX + Math.random().toString(36).slice(2) + Date.now().toString(36);
    if (!orphan) own.add(this.key);
    /** How many events of the queue the stored entry holds. */
    this.written = 0;
    this.errors = 0;
  }

  /**
   * Stores the events of `queue` (as many as fit `maxBytes`, oldest first). If the
   * entry written before is gone, a later page took its events: they are removed from
   * `queue` first (returns how many), so that they are not sent twice.
   */
  save(queue) {
    let taken = 0;
    try {
      if (this.written && this.storage.getItem(this.key) === null) {
        taken = this.written;
        queue.splice(0, taken);
      }
      let n = queue.length;
      let value = JSON.stringify({ t: Date.now(), events: queue });
      while (n > 0 && (this.key.length + value.length) * 2 > this.maxBytes) {
        n = Math.floor(n / 2);
        value = JSON.stringify({ t: Date.now(), events: queue.slice(0, n) });
      }
      if (n === 0) {
        this.storage.removeItem(this.key);
      } else {
        this.storage.setItem(this.key, value);
      }
      this.written = n;
    } catch {
      this.errors++;
    }
    return taken;
  }

  /**
   * Takes the entry back before the page sends its events itself; returns how many
   * events at the front of the queue a later page took meanwhile (0 when none were).
   */
  takeBack() {
    if (!this.written) return 0;
    try {
      const raw = this.storage.getItem(this.key);
      if (raw === null) return this.written;
      this.storage.removeItem(this.key);
    } catch {
      this.errors++;
    }
    this.written = 0;
    return 0;
  }
}

/**
 * Removes every early entry of other pages, and returns the packed events of those not
 * older than `ttlMs`, oldest entry first.
 */
export function takeOthers(storage, ttlMs) {
  const out = [];
  try {
    const keys = [];
    for (let i = 0; i < storage.length; i++) {
      const k = storage.key(i);
      if (k && k.startsWith(PREFIX) && !own.has(k)) keys.push(k);
    }
    const entries = [];
    for (const k of keys) {
      const raw = storage.getItem(k);
      if (raw === null) continue;
      storage.removeItem(k);
      try {
        const e = JSON.parse(raw);
        if (e && Array.isArray(e.events) && Date.now() - e.t <= ttlMs) entries.push(e);
      } catch {
        // corrupted: dropped
      }
    }
    entries.sort((a, b) => a.t - b.t);
    for (const e of entries) for (const s of e.events) if (typeof s === 'string' || (s && s.params && Array.isArray(s.params.visitors))) out.push(s);
  } catch {
    // storage unusable: nothing to recover
  }
  return out;
}
