// Vercel Edge Functions / Next.js middleware entry (export condition `edge-light`): like
// workerd, that runtime cannot compile WebAssembly from bytes at run time; it hands over
// a wasm file imported with the `?module` suffix as a compiled module, which is
// instantiated synchronously: `ready` is already resolved. This file must not touch
// import.meta.url.
import wasm from './dist/bep_bg.wasm?module';
import { initSync, BatchEventProcessor } from './dist/bep.js';
import { closeOnFree } from './close-on-free.js';

// Next.js hands the middleware a module compiled in another realm: a real
// WebAssembly.Module that `new WebAssembly.Instance` accepts, but for which
// `instanceof WebAssembly.Module` is false, so wasm-bindgen's initSync would try to
// compile it as bytes (a TypeError). Give it this realm's prototype first.
if (!(wasm instanceof WebAssembly.Module)) Object.setPrototypeOf(wasm, WebAssembly.Module.prototype);
closeOnFree(BatchEventProcessor);
initSync({ module: wasm });

/** Already resolved: the module was instantiated when this entry was imported. */
export const ready = Promise.resolve();
/** Nothing to do here (the browser entry loads the wasm from a URL); returns `ready`. */
export const init = () => ready;
export { BatchEventProcessor, wasmMemory } from './dist/bep.js';
export { queueDispatcher, handleQueueBatch } from './workers.js';
