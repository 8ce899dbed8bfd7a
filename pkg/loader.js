// Browsers: loads the wasm module in the background, never in the importing app's way.
// Owns `ready`, `init(url)` and the one load of the module per page: the wasm-bindgen
// glue (dist/bep.js) is imported dynamically, so bundlers put it, with the wasm, out of
// the app's first chunk, and the wasm is compiled while it streams in
// (`WebAssembly.compileStreaming`, or from an `arrayBuffer` when the server does not
// send `application/wasm`). Must not: wait at the top level, touch the processor's
// state, or throw from anything but `init()` misuse.
import { closeOnFree } from './close-on-free.js';

/** Why the load failed, as a sentence that says what to do. */
function loadError(what, cause) {
  const hint = /unsafe-eval|Content Security Policy|CSP/i.test(String(cause && cause.message))
    ? " (the page's Content-Security-Policy must allow script-src 'wasm-unsafe-eval')"
    : '';
  const e = new Error(`batch-event-processor: could not load its wasm module from ${what}: ${cause && cause.message ? cause.message : cause}${hint}`);
  e.cause = cause;
  return e;
}

/** Compiles the wasm at `response` (a Response or a promise of one). */
async function compileResponse(response, what) {
  const r = await response;
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  if (typeof WebAssembly.compileStreaming === 'function' && /^application\/wasm\b/.test(r.headers.get('Content-Type') || '')) {
    return WebAssembly.compileStreaming(r);
  }
  // A server without the wasm MIME type: compileStreaming would refuse the response.
  return WebAssembly.compile(await r.arrayBuffer());
}

/** A compiled module from what `init()` accepts: a URL (string or URL), a Response, bytes or a Module. */
async function compile(source) {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return WebAssembly.compile(source);
  if (typeof source === 'string' || source instanceof URL || (typeof Request === 'function' && source instanceof Request)) {
    return compileResponse(fetch(source), source);
  }
  return compileResponse(source);
}

let settle;
/**
 * Resolves with nothing once the wasm module is instantiated, and rejects with an
 * `Error` saying why when it cannot be (network error, HTTP error, a CSP without
 * `'wasm-unsafe-eval'`). Importing never waits for it.
 */
export const ready = new Promise((resolve, reject) => {
  settle = { resolve, reject };
});
// Processors report a failed load through `onDispatchError`: an app that does not
// await `ready` gets no unhandled rejection (awaiting it still sees the rejection).
ready.catch(() => {});

/** The wasm-bindgen glue module once `ready` has resolved. */
let glue;
export const loaded = () => glue;

let source;
let started = false;

function start() {
  if (started) return;
  started = true;
  // The one place the asset is named: bundlers (Vite, webpack 5, Rollup, Parcel) emit
  // the file this `new URL(..., import.meta.url)` points at.
  const what = source ?? new URL('./dist/bep_bg.wasm', import.meta.url);
  const described = typeof what === 'string' || what instanceof URL ? String(what) : 'the source given to init()';
  const compiled = compile(what).catch((e) => {
    throw loadError(described, e);
  });
  const glueModule = import('./dist/bep.js');
  Promise.all([glueModule, compiled])
    .then(async ([m, module]) => {
      await m.default({ module_or_path: module });
      closeOnFree(m.BatchEventProcessor);
      glue = m;
    })
    .then(
      () => settle.resolve(),
      (e) => settle.reject(e.message && e.message.startsWith('batch-event-processor:') ? e : loadError(described, e)),
    );
}

// The load starts in a microtask, after the importing module's own top-level code: an
// app that hosts the wasm elsewhere calls `init(url)` there, before any request.
queueMicrotask(start);

/**
 * Loads the wasm from `source` instead of the file next to this package (for apps that
 * host the asset themselves, e.g. on a CDN): a URL (string or `URL`), a `Response` or a
 * promise of one, bytes, or a compiled `WebAssembly.Module`. Call it in the same task as
 * the import (in the app's top-level code), before the load has started; later calls
 * change nothing. Returns `ready`.
 */
export function init(from) {
  if (!started && from !== undefined && from !== null) source = from;
  start();
  return ready;
}

/** The module's `WebAssembly.Memory` once ready (undefined before). */
export function wasmMemory() {
  return glue ? glue.wasmMemory() : undefined;
}
