// What a user ships: our package (wasm + JS glue) against the peer's bundle for the same
// job, raw and gzip (node:zlib, level 9).
//
//   node tests/bench/size.mjs          prints the table (bench.mjs prints it too)
//
// Ours:
// - "shipped files": the files of pkg/ that the browser entry loads, as published
//   (browser.js, dist/bep.js, the glue snippet, dist/bep_bg.wasm).
// - "bundled": what a bundler puts in an app: pkg/browser.js bundled and minified by
//   esbuild (the wasm stays a separate file, fetched by URL) plus the wasm.
// Peer (SDK 6): an esbuild-minified bundle (ESM) of an entry that imports only
// `createBatchEventProcessor` and the default `eventDispatcher` from
// `@optimizely/optimizely-sdk`, for the browser (the SDK's browser build) and for Node.
// For reference only: `@optimizely/js-sdk-event-processor` 0.10's
// `LogTierV1EventProcessor` bundled the same way (it has no default dispatcher).
// Bundles are written to a temp dir under target/ and removed afterwards.
import { readFileSync, mkdirSync, mkdtempSync, rmSync, readdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = path.join(root, 'pkg');

const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const measure = (buf) => ({ raw: buf.length, gzip: gz(buf) });

/** Reads a file of pkg/, waiting a little if `make build` is swapping pkg/dist. */
async function readPkg(rel) {
  for (let i = 0; ; i++) {
    try {
      return readFileSync(path.join(pkg, rel));
    } catch (e) {
      if (i >= 20) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function findGlue() {
  const snippets = path.join(pkg, 'dist', 'snippets');
  const found = [];
  const walk = (dir) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (d.name.endsWith('.js')) found.push(path.relative(pkg, p));
    }
  };
  walk(snippets);
  return found;
}

async function bundle(dir, name, contents, platform) {
  const entry = path.join(dir, `${name}.mjs`);
  writeFileSync(entry, contents);
  const outfile = path.join(dir, `${name}.out.mjs`);
  await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: 'esm',
    platform,
    target: 'es2022',
    outfile,
    logLevel: 'silent',
    nodePaths: [path.join(root, 'node_modules')],
    // Our browser entry fetches the wasm by URL: leave it out of the JS bundle.
    external: ['*.wasm'],
  });
  return readFileSync(outfile);
}

/** Measures everything; returns rows `{ what, raw, gzip, note }`. */
export async function measureSizes() {
  const rows = [];
  // ---- ours, as published
  let rawSum = 0;
  let gzSum = 0;
  const files = ['browser.js', 'dist/bep.js', ...findGlue(), 'dist/bep_bg.wasm'];
  let wasm;
  for (const f of files) {
    const buf = await readPkg(f);
    const m = measure(buf);
    if (f.endsWith('.wasm')) wasm = m;
    rawSum += m.raw;
    gzSum += m.gzip;
    rows.push({ what: `ours  ${f.replace(/snippets\/[^/]+\/src\/wasm\//, 'snippets/…/')}`, ...m });
  }
  rows.push({ what: 'ours  shipped files, total', raw: rawSum, gzip: gzSum, note: 'gzip per file, summed' });

  mkdirSync(path.join(root, 'target'), { recursive: true });
  const dir = mkdtempSync(path.join(root, 'target', 'bench-size-'));
  try {
    const ourJs = await bundle(
      dir,
      'ours',
      `export { BatchEventProcessor } from ${JSON.stringify(path.join(pkg, "browser.js"))};\n`,
      'browser',
    );
    const js = measure(ourJs);
    rows.push({ what: 'ours  esbuild-minified glue (browser entry)', ...js });
    rows.push({ what: 'ours  bundled: minified glue + wasm', raw: js.raw + wasm.raw, gzip: js.gzip + wasm.gzip, note: 'the number to compare' });

    const sdkEntry = "export { createBatchEventProcessor, eventDispatcher } from '@optimizely/optimizely-sdk';\n";
    for (const platform of ['browser', 'node']) {
      const m = measure(await bundle(dir, `sdk6-${platform}`, sdkEntry, platform));
      rows.push({
        what: `peer  SDK 6 createBatchEventProcessor + eventDispatcher (${platform})`,
        ...m,
        note: platform === 'browser' ? 'the number to compare' : '',
      });
    }
    const legacy = measure(
      await bundle(dir, 'legacy', "export { LogTierV1EventProcessor } from '@optimizely/js-sdk-event-processor';\n", 'browser'),
    );
    rows.push({ what: 'peer  js-sdk-event-processor 0.10 LogTierV1EventProcessor', ...legacy, note: 'reference; no dispatcher' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;

/** The size table as text. */
export function formatSizes(rows) {
  const w = Math.max(...rows.map((r) => r.what.length));
  const lines = [`${'artifact'.padEnd(w)}  ${'raw'.padStart(10)}  ${'gzip -9'.padStart(10)}  ${'bytes gz'.padStart(8)}  note`];
  for (const r of rows) {
    lines.push(`${r.what.padEnd(w)}  ${kb(r.raw).padStart(10)}  ${kb(r.gzip).padStart(10)}  ${String(r.gzip).padStart(8)}  ${r.note ?? ''}`);
  }
  const ours = rows.find((r) => r.what.startsWith('ours  bundled'));
  const peer = rows.find((r) => r.what.includes('SDK 6') && r.what.includes('(browser)'));
  if (ours && peer) {
    lines.push(`ours/peer (bundled, gzip): ${(ours.gzip / peer.gzip).toFixed(2)}x   (raw: ${(ours.raw / peer.raw).toFixed(2)}x)`);
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(formatSizes(await measureSizes()));
}
