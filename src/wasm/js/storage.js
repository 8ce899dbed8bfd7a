// Owns the persistence of unconfirmed batches across reloads (`BatchStore`): the
// storage keys, the byte cap, tab liveness and recovery. Must not: send batches or
// decide when to persist (the Rust side does); never throw on a storage failure.

const STORE_PREFIX = 'bep:v1:';
/**
 * `keepAlive` writes the alive mark when it would otherwise be older than the stale
 * limit less this much by the tab's next wake-up: every ~10 s of a 30 s limit while a
 * tab keeps pumping, never on most pumps.
 */
const KEEP_ALIVE_MARGIN_MS = 20_000;

/**
 * The Storage the `storage` option names, or undefined (no storage): `false`; unset or
 * `true`, `localStorage` where there is a page (a SecurityError where storage is
 * disabled counts as none); anything else, itself. The browser entry picks the same one
 * before the module is ready (pkg/early-store.js).
 */
export function storageOf(option) {
  if (option === false) return undefined;
  if (option !== undefined && option !== null && option !== true) return option;
  try {
    return globalThis.document ? globalThis.localStorage : undefined;
  } catch {
    return undefined; // a SecurityError where storage is disabled
  }
}

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
    /** Set by `leave()` until `back()`: no alive mark is written meanwhile. */
    this.left = false;
    /** The last alive mark written (ms since the epoch; may lie ahead, see `keepAlive`). */
    this.mark = 0;
    this.beat();
  }

  /**
   * Marks this tab alive (until `at`, now by default): its batches are not recovered by
   * other tabs. Nothing once the page was left (`leave()`), until `back()`.
   */
  beat(at = Date.now()) {
    if (this.left) return;
    this.mark = at;
    try {
      this.storage.setItem(`${STORE_PREFIX}alive:${this.tab}`, String(at));
    } catch {
      this.errors++;
    }
  }

  /**
   * Called on every pump while this tab holds batches it still sends or retries: keeps
   * its alive mark from going stale (older than `staleMs`) before the tab's next
   * wake-up, at most `aheadMs` away, so that no other tab takes batches this one still
   * retries. Writes to storage only when the mark would go stale by then (about every
   * 10 s while pumping often; once per wake-up across long retry waits): cheap.
   */
  keepAlive(aheadMs, staleMs) {
    const now = Date.now();
    if (this.left || this.mark + staleMs >= now + aheadMs + KEEP_ALIVE_MARGIN_MS) return;
    this.beat(now + aheadMs);
  }

  /** The page is shown again after `leave()` (back/forward cache): alive again. */
  back() {
    this.left = false;
    this.beat();
  }

  /**
   * This page is being left (or closed): its unconfirmed batches may be recovered at
   * once. Not for a page merely hidden: it still holds and retries its batches.
   */
  leave() {
    this.left = true;
    try {
      this.storage.removeItem(`${STORE_PREFIX}alive:${this.tab}`);
    } catch {
      this.errors++;
    }
  }

  /**
   * The store of the `storage` option (validated by options.js): none for `false`,
   * `localStorage` where it exists and works for unset/`true`, else the given object.
   */
  static open(option, maxBytes, ttlMs) {
    const storage = storageOf(option);
    return storage ? new BatchStore(storage, maxBytes, ttlMs) : undefined;
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
