// Cloudflare Workers entry (export conditions `workerd` / `worker`): workerd cannot
// compile WebAssembly from bytes at run time, so the wasm is imported as a module and
// instantiated from it, synchronously: `ready` is already resolved. This file must not
// touch import.meta.url.
import wasm from './dist/bep_bg.wasm';
import { initSync, BatchEventProcessor } from './dist/bep.js';
import { closeOnFree } from './close-on-free.js';

closeOnFree(BatchEventProcessor);
initSync({ module: wasm });

/** Already resolved: the module was instantiated when this entry was imported. */
export const ready = Promise.resolve();
/** Nothing to do here (the browser entry loads the wasm from a URL); returns `ready`. */
export const init = () => ready;
export { BatchEventProcessor, wasmMemory } from './dist/bep.js';
export { queueDispatcher, handleQueueBatch } from './workers.js';
