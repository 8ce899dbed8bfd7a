// Build step (make build, after short-names.mjs): cuts from wasm-bindgen's glue
// (dist/bep.js) what no entry of pkg/ can reach, so that it is not in every app's bundle
// (the browser entry imports dist/bep.js dynamically: a bundler keeps all of it).
//
// 1. Loading. Every entry hands the glue a compiled `WebAssembly.Module` or its bytes:
//    node.js the bytes it read, workerd.js and edge.js the module their runtime compiled,
//    loader.js (browser) the module it compiled from a URL, Response or bytes itself
//    (`compile()`, with its own error messages). wasm-bindgen's `__wbg_load` (fetching a
//    URL, `instantiateStreaming`, the MIME-type fallback), its defaulting to
//    `new URL('bep_bg.wasm', import.meta.url)` and its deprecation warnings are never
//    used: `initSync({ module })` and `default({ module_or_path })` are replaced by
//    versions that take only what the entries pass.
// 2. Imports. wasm-bindgen writes one `import * as importN` line, and one key in the
//    imports object, per `#[wasm_bindgen(module = ...)]` block, so one module with
//    three blocks is imported three times under the same key (a duplicate key, which
//    bundlers warn about): one of each is kept.
//
// Fails, leaving the file untouched, unless each piece it replaces is found exactly as
// wasm-bindgen 0.2.130 (pinned in Cargo.toml) writes it.
//
//   node .ci/trim-glue.mjs <dir with bep.js>
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const jsPath = path.join(process.argv[2], 'bep.js');
let js = readFileSync(jsPath, 'utf8');

function fail(what) {
  console.error(`trim-glue: ${what} (has wasm-bindgen's output changed?)`);
  process.exit(1);
}

// ---- 1. loading
const LOAD_START = 'async function __wbg_load(module, imports) {';
const TAIL = 'export { initSync, __wbg_init as default };';
const start = js.indexOf(LOAD_START);
const end = js.indexOf(TAIL);
if (start < 0 || end < 0 || js.indexOf(LOAD_START, start + 1) >= 0 || end < start) fail('__wbg_load ... export tail not found once');
const cut = js.slice(start, end);
for (const part of ['function initSync(module) {', 'async function __wbg_init(module_or_path) {', 'async function __wbg_init_once(module_or_path) {', 'WebAssembly.instantiateStreaming']) {
  if (!cut.includes(part)) fail(`'${part}' not in the loading code`);
}
const LOADING = `// Trimmed by .ci/trim-glue.mjs: every entry of pkg/ passes a compiled WebAssembly.Module
// (or, node.js, its bytes); URLs and Responses are loaded by pkg/loader.js.
function initSync({ module }) {
    if (wasm !== undefined) return wasm;
    if (!(module instanceof WebAssembly.Module)) module = new WebAssembly.Module(module);
    return __wbg_finalize_init(new WebAssembly.Instance(module, __wbg_get_imports()), module);
}

async function __wbg_init({ module_or_path: module }) {
    if (wasm !== undefined) return wasm;
    if (!(module instanceof WebAssembly.Module)) module = await WebAssembly.compile(module);
    const instance = await WebAssembly.instantiate(module, __wbg_get_imports());
    return wasm ?? __wbg_finalize_init(instance, module);
}

`;
js = js.slice(0, start) + LOADING + js.slice(end);

// ---- 2. duplicate module imports
const importLine = /^import \* as (import\d+) from "([^"]+)"\n/gm;
const firstFor = new Map();
const dropped = [];
for (const [, name, spec] of js.matchAll(importLine)) {
  if (firstFor.has(spec)) dropped.push({ name, spec });
  else firstFor.set(spec, name);
}
for (const { name, spec } of dropped) {
  const line = `import * as ${name} from "${spec}"\n`;
  const key = `        "${spec}": ${name},\n`;
  if (js.split(line).length !== 2 || js.split(key).length !== 2) fail(`${name} (${spec}) not imported and used exactly once`);
  js = js.replace(line, '').replace(key, '');
  if (new RegExp(`\\b${name}\\b`).test(js)) fail(`${name} still used after its removal`);
}

writeFileSync(jsPath, js);
