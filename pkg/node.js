// Node entry (ESM; `require` gets node.cjs, built from this file): the wasm is read
// from the package directory and instantiated synchronously, so no init step is needed
// and `ready` is already resolved.
import { readFileSync } from 'node:fs';
import { initSync, BatchEventProcessor } from './dist/bep.js';
import { closeOnFree } from './close-on-free.js';

closeOnFree(BatchEventProcessor);
initSync({ module: readFileSync(new URL('./dist/bep_bg.wasm', import.meta.url)) });

/** Already resolved: the module was instantiated when this entry was imported. */
export const ready = Promise.resolve();
/** Nothing to do here (the browser entry loads the wasm from a URL); returns `ready`. */
export const init = () => ready;
export { BatchEventProcessor, wasmMemory } from './dist/bep.js';
export { queueDispatcher, handleQueueBatch } from './workers.js';
