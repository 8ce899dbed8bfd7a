// Owns the LogEvent objects handed to listeners and dispatchers, and the second
// argument of a custom dispatcher (`{ pageHidden, signal }`). Must not: send, store or
// pack anything, decode a body nobody asked for, or make an AbortController nobody reads.

const decoder = new TextDecoder();

/**
 * The LogEvent handed to listeners and dispatchers. `bytes` is the UTF-8 body Rust
 * wrote, a `Uint8Array` of its own (copied out of wasm memory once): the default
 * dispatcher, beacons and keepalive requests send it as is. `body` (the same JSON as a
 * string) and `params` (parsed) are decoded on first access, then cached, so no string
 * is built unless someone reads them. Assigning either replaces what later reads see
 * (never what is sent).
 */
export function makeLogEvent(url, bytes) {
  let body;
  let params;
  const text = () => (body === undefined ? (body = decoder.decode(bytes)) : body);
  return {
    url,
    httpVerb: 'POST',
    headers: { 'Content-Type': 'application/json' },
    bytes,
    get body() {
      return text();
    },
    set body(value) {
      body = value;
    },
    get params() {
      if (params === undefined) params = JSON.parse(text());
      return params;
    },
    set params(value) {
      params = value;
    },
  };
}

/** The abort function of a dispatcher's flags (a symbol: no name a dispatcher could clash with). */
const ABORT = Symbol('abort');

/**
 * The second argument of a custom dispatcher, `{ pageHidden, signal }`. The
 * AbortController behind `signal` is made when `signal` is first read, so a dispatcher
 * that never reads it (a synchronous one, most often) costs none; `abortDispatch`
 * aborts it, or, when `signal` has not been read yet, makes the first read return an
 * aborted signal. `signal` is undefined where there is no AbortController; assigning
 * it replaces what later reads see.
 */
export function dispatchFlags(pageHidden) {
  let controller;
  let aborted = false;
  let replaced = false;
  let value;
  return {
    pageHidden,
    get signal() {
      if (replaced) return value;
      if (controller === undefined && typeof AbortController === 'function') {
        controller = new AbortController();
        if (aborted) controller.abort();
      }
      return controller?.signal;
    },
    set signal(v) {
      replaced = true;
      value = v;
    },
    [ABORT]() {
      aborted = true;
      controller?.abort();
    },
  };
}

/** Aborts the signal of flags made by `dispatchFlags` (the send timed out or was cut off). */
export function abortDispatch(flags) {
  flags[ABORT]();
}

/**
 * `true` for a promise or any object with a `then` method (what `await` waits on); a
 * `then` getter that throws makes it not one.
 */
export function isThenable(v) {
  if (v instanceof Promise) return true;
  if (typeof v !== 'object' || v === null) return false;
  try {
    return typeof v.then === 'function';
  } catch {
    return false;
  }
}
