// Browsers: the `BatchEventProcessor` the browser entry exports. Once the wasm module
// is ready, `new BatchEventProcessor(options)` returns the wasm class itself. Before,
// it returns this stand-in, which works at once: options are validated (same
// TypeErrors), events are packed and checked in JS (same TypeErrors) and kept in order,
// bounded by `maxQueueSize` and `maxQueueBytes` and counted in `stats()`; listeners,
// `flush()` and `close()` (with its deadline) wait for the module. When it is ready the
// stand-in makes the wasm processor, subscribes the listeners, hands it the packed
// events in order and from then on passes every call through. If the page is hidden or
// left first, the events go to storage for a later page (early-store.js); if the module
// cannot load, they stay there, listeners hear it once and `process()` goes on
// accepting. Must not: import the wasm glue statically, send anything itself.
import { loaded, ready } from './loader.js';
import { packEarly, utf8Length } from './early-events.js';
import { EarlyEntry, exclusive, storageOf, takeOthers } from './early-store.js';
import { closeTimeout, validOptions } from './dist/glue/options.js';

const CLOSED = 'the processor is closed: process() after close()';

/** Events in a queued item: a packed event, or a copy of a LogEvent. */
const count = (s) =>
  typeof s === 'string' ? 1 : s.params.visitors.reduce((n, v) => n + (Array.isArray(v?.snapshots) ? v.snapshots.reduce((m, x) => m + (Array.isArray(x?.events) ? x.events.length : 0), 0) : 0), 0);
/** Bytes of a queued item (UTF-8 of a packed event; UTF-16 length of a LogEvent's JSON). */
const size = (s) => (typeof s === 'string' ? utf8Length(s) : JSON.stringify(s.params).length);
/** Hands a queued item to the wasm processor `p`; its answer (`false`: no room). */
const take = (p, s) => (typeof s === 'string' ? p.processPacked(s) : p.processLogEvent(s));

function shown(v) {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Recovers, once per page, the events pages left before their module was ready. */
let recovered = false;
function recoverEarly(p, options) {
  if (recovered) return;
  const o = validOptions(options);
  const storage = storageOf(o.storage);
  if (!storage || typeof storage.key !== 'function') return;
  recovered = true;
  exclusive(() => takeOthers(storage, o.storageTtl)).then((events) => {
    let n = 0;
    for (let i = 0; i < events.length; i++) {
      try {
        if (take(p, events[i])) n++;
      } catch (e) {
        if (!/closed/.test(e.message)) continue; // refused by the core (invalid after an upgrade): dropped
        // Closed meanwhile: the rest goes back to storage for another processor or page.
        new EarlyEntry(storage, o.maxStorageBytes, true).save(events.slice(i));
        recovered = false;
        return;
      }
    }
    if (n) p.flush();
  });
}

/** The wasm processor for `options`, with the events of earlier pages recovered unless it is closing at once. */
function wasmProcessor(m, options, recover = true) {
  const p = new m.BatchEventProcessor(options);
  if (recover) recoverEarly(p, options);
  return p;
}

function listener(f) {
  if (typeof f !== 'function') throw new TypeError('listener must be a function');
  return f;
}

function callAll(fns, value) {
  for (const f of fns) {
    try {
      f(value);
    } catch {
      // A listener that throws does not stop the others.
    }
  }
}

export class BatchEventProcessor {
  /** `true` for this stand-in and for the wasm class it becomes. */
  static [Symbol.hasInstance](x) {
    const m = loaded();
    return #p in Object(x) || Boolean(m && x instanceof m.BatchEventProcessor);
  }

  #options;
  #limits;
  /** The wasm processor, once handed over. */
  #p;
  /** Packed events (strings) and copies of LogEvents (objects), in order. */
  #queue = [];
  #bytes = 0;
  #events = 0;
  #dropped = 0;
  /** Accepted before ready, refused by the module when it took them. */
  #lost = 0;
  #failure;
  #closing;
  #flushes = [];
  #ids = new Map();
  #nextId = 1;
  #entry;
  #unwatch;
  #saveScheduled = false;

  constructor(options) {
    const m = loaded();
    if (m) return wasmProcessor(m, options);
    const o = validOptions(options);
    this.#options = options;
    this.#limits = o;
    const storage = storageOf(o.storage);
    if (storage) this.#entry = new EarlyEntry(storage, o.maxStorageBytes);
    this.#watchPage();
    ready.then(
      () => this.#handOver(loaded()),
      (e) => this.#loadFailed(e),
    );
  }

  /** Hidden or left before ready: the events go to storage for a later page. */
  #watchPage() {
    const doc = globalThis.document;
    if (!this.#entry || !doc || typeof globalThis.addEventListener !== 'function') return;
    const save = () => {
      if (this.#queue.length) this.#save();
    };
    const onVisibility = () => {
      if (doc.visibilityState === 'hidden') save();
    };
    doc.addEventListener('visibilitychange', onVisibility);
    globalThis.addEventListener('pagehide', save);
    this.#unwatch = () => {
      doc.removeEventListener('visibilitychange', onVisibility);
      globalThis.removeEventListener('pagehide', save);
    };
  }

  #save() {
    if (!this.#entry) return;
    const taken = this.#entry.save(this.#queue);
    if (taken) this.#recount();
  }

  #recount() {
    this.#bytes = this.#queue.reduce((n, s) => n + size(s), 0);
    this.#events = this.#queue.reduce((n, s) => n + count(s), 0);
  }

  async #handOver(m) {
    if (this.#closing && this.#closing.gaveUp) return; // left in storage for a later page
    if (this.#entry && this.#entry.written) {
      // The events were stored (the page was hidden): take them back first, unless a
      // later page took them meanwhile. Otherwise the hand-over is synchronous, done
      // before any `ready.then` the app attached after making the processor.
      const taken = await exclusive(() => (this.#closing && this.#closing.gaveUp ? 0 : this.#entry.takeBack()));
      if (this.#closing && this.#closing.gaveUp) return;
      if (taken) this.#queue.splice(0, taken);
    }
    this.#unwatch?.();
    let p;
    try {
      p = wasmProcessor(m, this.#options, !this.#closing);
    } catch (e) {
      this.#loadFailed(e);
      return;
    }
    for (const entry of this.#ids.values()) {
      entry.inner = entry.kind === 'dispatch' ? p.onEventDispatch(entry.f) : p.onDispatchError(entry.f);
    }
    let firstError;
    for (const s of this.#queue) {
      try {
        if (!take(p, s)) this.#lost += count(s);
      } catch (e) {
        this.#lost += count(s);
        firstError ??= e.message;
      }
    }
    const lost = this.#lost;
    this.#queue = [];
    this.#bytes = 0;
    this.#events = 0;
    this.#p = p;
    if (lost) {
      this.#report({
        status: null,
        events: lost,
        reason: 'refused',
        message: `the module refused ${lost} event(s) processed before it was ready: ${firstError ?? 'the queue was full'}`,
      });
    }
    for (const f of this.#flushes.splice(0)) f(p.flush());
    if (this.#closing) {
      const left = Math.max(0, this.#closing.deadline - Date.now());
      this.#closing.resolve(p.close({ timeout: left }).then((s) => ({ ...s, failed: s.failed + this.#lost })));
    }
  }

  #loadFailed(e) {
    this.#failure = e;
    const n = this.#events;
    if (n) this.#save();
    const kept = this.#entry ? `${n} event(s) kept in storage for a later page` : `${n} event(s) held in memory only (storage is off)`;
    this.#report({ status: null, events: n, reason: 'load-failed', message: `${e.message}; ${kept}` });
    for (const f of this.#flushes.splice(0)) f();
    this.#closing?.resolve(this.#summary());
  }

  #report(error) {
    callAll([...this.#ids.values()].filter((x) => x.kind === 'error').map((x) => x.f), error);
  }

  #summary() {
    return { dispatched: 0, failed: this.#lost, pending: this.#events };
  }

  process(event) {
    if (this.#p) return this.#p.process(event);
    if (this.#closing) throw new Error(CLOSED);
    return this.#accept([packEarly(event)]);
  }

  /** Queues packed events, all or none; `false` (all counted dropped) when they do not fit. */
  #accept(packed) {
    const bytes = packed.reduce((n, s) => n + size(s), 0);
    const events = packed.reduce((n, s) => n + count(s), 0);
    if (this.#events + events > this.#limits.maxQueueSize || this.#bytes + bytes > this.#limits.maxQueueBytes) {
      this.#dropped += events;
      return false;
    }
    this.#queue.push(...packed);
    this.#bytes += bytes;
    this.#events += events;
    if (this.#failure && !this.#saveScheduled) {
      // The module will not come: keep what arrives for a later page.
      this.#saveScheduled = true;
      queueMicrotask(() => {
        this.#saveScheduled = false;
        this.#save();
      });
    }
    return true;
  }

  /**
   * Before ready, only the outline of the LogEvent is checked (an object whose `params`
   * has a `visitors` array): a copy of it is queued in order with the events and
   * re-batched when the module is ready; what the module then refuses is counted in
   * `failed` and reported through `onDispatchError` (reason `'refused'`).
   */
  processLogEvent(logEvent) {
    if (this.#p) return this.#p.processLogEvent(logEvent);
    if (this.#closing) throw new Error(CLOSED);
    const params = logEvent !== null && typeof logEvent === 'object' ? logEvent.params : undefined;
    if (params === null || typeof params !== 'object') throw new TypeError(`logEvent.params must be an object, got ${shown(params)}`);
    if (!Array.isArray(params.visitors)) throw new TypeError(`logEvent.params.visitors must be an array, got ${shown(params.visitors)}`);
    const copy = JSON.parse(JSON.stringify({ url: logEvent.url, httpVerb: logEvent.httpVerb, params }));
    return this.#accept([copy]);
  }

  asEventDispatcher() {
    return {
      dispatchEvent: (logEvent) => {
        try {
          return this.processLogEvent(logEvent)
            ? Promise.resolve({ statusCode: 200 })
            : Promise.reject(new Error('batch-event-processor queue is full (maxQueueSize): the events were not accepted'));
        } catch (e) {
          return Promise.reject(e);
        }
      },
    };
  }

  #subscribe(kind, f) {
    const entry = { kind, f: listener(f), inner: undefined };
    if (this.#p) entry.inner = kind === 'dispatch' ? this.#p.onEventDispatch(f) : this.#p.onDispatchError(f);
    const id = this.#nextId++;
    this.#ids.set(id, entry);
    return id;
  }

  #unsubscribe(kind, id) {
    const entry = this.#ids.get(id);
    if (!entry || entry.kind !== kind) return false;
    this.#ids.delete(id);
    if (this.#p) return kind === 'dispatch' ? this.#p.removeOnEventDispatch(entry.inner) : this.#p.removeOnDispatchError(entry.inner);
    return true;
  }

  onEventDispatch(f) {
    return this.#subscribe('dispatch', f);
  }

  removeOnEventDispatch(id) {
    return this.#unsubscribe('dispatch', id);
  }

  onDispatchError(f) {
    return this.#subscribe('error', f);
  }

  removeOnDispatchError(id) {
    return this.#unsubscribe('error', id);
  }

  /** Before ready: waits for the module, then flushes; resolves at once if it cannot load. */
  flush() {
    if (this.#p) return this.#p.flush();
    if (this.#failure || (this.#closing && this.#closing.gaveUp)) return Promise.resolve();
    return new Promise((resolve) => this.#flushes.push(resolve));
  }

  flushWith(ctx) {
    if (this.#p) return this.#p.flushWith(ctx);
    const p = this.flush();
    try {
      ctx?.waitUntil?.(p);
    } catch {
      // a waitUntil that throws is ignored
    }
    return p;
  }

  /**
   * Before ready: refuses further events and waits for the module until the deadline
   * (`options.timeout`, default the `closeTimeout` option), then closes the wasm
   * processor with what is left of it. If the deadline or a failed load comes first,
   * the events stay in storage for a later page and it resolves with them as pending.
   */
  close(options) {
    if (this.#p) {
      const closed = this.#p.close(options);
      return this.#lost ? closed.then((s) => ({ ...s, failed: s.failed + this.#lost })) : closed;
    }
    if (this.#closing) return this.#closing.promise;
    const timeout = closeTimeout(options, this.#limits.closeTimeout);
    const closing = { deadline: Date.now() + timeout, gaveUp: false };
    closing.promise = new Promise((resolve) => {
      closing.resolve = resolve;
    });
    this.#closing = closing;
    if (this.#failure) {
      closing.resolve(this.#summary());
    } else {
      const timer = setTimeout(() => {
        if (this.#p) return;
        closing.gaveUp = true;
        this.#save();
        for (const f of this.#flushes.splice(0)) f();
        closing.resolve(this.#summary());
      }, timeout);
      closing.promise.then(() => clearTimeout(timer));
    }
    return closing.promise;
  }

  stats() {
    if (this.#p) {
      const s = this.#p.stats();
      return { ...s, failed: s.failed + this.#lost, dropped: s.dropped + this.#dropped };
    }
    return { queued: this.#events, inFlight: 0, dispatched: 0, batches: 0, retried: 0, failed: this.#lost, dropped: this.#dropped, bytesSent: 0 };
  }

  storageErrors() {
    return (this.#p ? this.#p.storageErrors() : 0) + (this.#entry ? this.#entry.errors : 0);
  }

  /** Starts `close()` (it never frees a processor that holds events). */
  free() {
    if (this.#p) this.#p.free();
    else this.close();
  }
}

const proto = BatchEventProcessor.prototype;
if (typeof Symbol.dispose === 'symbol') {
  proto[Symbol.dispose] = function dispose() {
    this.close();
  };
}
if (typeof Symbol.asyncDispose === 'symbol') {
  proto[Symbol.asyncDispose] = function asyncDispose() {
    return this.close().then(() => undefined);
  };
}
