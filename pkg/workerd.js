// Cloudflare Workers entry (export conditions `workerd` / `worker`): workerd cannot
// compile WebAssembly from bytes at run time, so the wasm is imported as a module and
// instantiated from it. This file must not touch import.meta.url.
import wasm from './dist/bep_bg.wasm';
import { initSync } from './dist/bep.js';

initSync({ module: wasm });

export { BatchEventProcessor, wasmMemory } from './dist/bep.js';
export { queueDispatcher, handleQueueBatch } from './workers.js';
