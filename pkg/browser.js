// Browser entry (bundlers and plain `<script type="module">`): fetches and
// instantiates the wasm next to this file with top-level await, so importing the
// package is the only init step.
import init from './dist/bep.js';

await init({ module_or_path: new URL('./dist/bep_bg.wasm', import.meta.url) });

export { BatchEventProcessor, wasmMemory } from './dist/bep.js';
export { queueDispatcher, handleQueueBatch } from './workers.js';
