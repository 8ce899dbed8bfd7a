// Node entry (ESM; `require` gets node.cjs, built from this file): the wasm is read
// from the package directory and instantiated synchronously, so no init step is needed.
import { readFileSync } from 'node:fs';
import { initSync } from './dist/bep.js';

initSync({ module: readFileSync(new URL('./dist/bep_bg.wasm', import.meta.url)) });

export { BatchEventProcessor, wasmMemory } from './dist/bep.js';
export { queueDispatcher, handleQueueBatch } from './workers.js';
