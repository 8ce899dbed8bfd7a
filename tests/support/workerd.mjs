// Shared by the workerd suites: install the packed package when pkg/ changed, and bundle
// a Worker with esbuild the way wrangler does (the `workerd` / `worker` export
// conditions, the `.wasm` import kept as a copied file that Miniflare loads as a
// `CompiledWasm` module).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as esbuild from 'esbuild';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const consumerModules = path.join(root, 'target/consumer/node_modules');
const installed = path.join(consumerModules, 'batch-event-processor');

/** Every file under `dir`, relative to it. */
function walk(dir, rel = '') {
  return readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? walk(dir, path.join(rel, d.name)) : [path.join(rel, d.name)],
  );
}

/** (Re)installs the packed package when it is missing or any installed file differs from pkg/. */
export function ensurePackageInstalled() {
  const stale =
    !existsSync(path.join(installed, 'workerd.js')) ||
    walk(installed).some((f) => {
      const want = path.join(root, 'pkg', f);
      return !existsSync(want) || !readFileSync(want).equals(readFileSync(path.join(installed, f)));
    });
  if (stale) execFileSync(process.execPath, [path.join(root, 'tests/support/install-package.mjs')], { stdio: 'inherit' });
}

/** Bundles `entry` into `outdir` (emptied first); `extra` adds esbuild options. Returns esbuild's result. */
export async function bundleWorker(entry, outdir, extra = {}) {
  rmSync(outdir, { recursive: true, force: true });
  return esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker'],
    nodePaths: [consumerModules],
    outdir,
    outExtension: { '.js': '.mjs' },
    // Keeps `import wasm from './…wasm'` as an import of a copied file.
    loader: { '.wasm': 'copy' },
    assetNames: '[name]',
    metafile: true,
    logLevel: 'warning',
    ...extra,
  });
}

/** POSTs `body` as JSON to the Worker in `mf`; answers `{ status, json, text }` (json undefined if not JSON). */
export async function postJson(mf, route, body = {}) {
  const res = await mf.dispatchFetch(`http://localhost${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}
