// Browser entry (bundlers and plain `<script type="module">`). Importing it runs only
// small JS modules and never waits: the wasm starts loading in the background at once
// (loader.js: `ready`, `init(url)`), and a processor made before it is ready already
// works (early-processor.js). The wasm-bindgen glue and the wasm are loaded with a
// dynamic import, so bundlers keep them out of the app's first chunk.
export { BatchEventProcessor } from './early-processor.js';
export { ready, init, wasmMemory } from './loader.js';
export { queueDispatcher, handleQueueBatch } from './workers.js';
