// Builds small browser apps the way users build them, each in its own folder under
// target/, with the packed package copied into the app's node_modules (as npm installs
// it) so that the bundler resolves it through its `exports`:
//   - Vite (production build),
//   - webpack 5 (production mode; `new URL('./x.wasm', import.meta.url)` becomes an
//     asset/resource),
//   - esbuild (bundle + code splitting; esbuild does not emit assets for
//     `new URL(..., import.meta.url)`, so the app copies the wasm itself and hands its URL
//     to `init(url)`, as an app hosting the asset on a CDN does).
// Every app gets `index.html` with `<pre id="out">` and loads its bundle.
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const installed = path.join(root, 'target', 'consumer', 'node_modules', 'batch-event-processor');

/** Packs and installs the package into target/consumer unless it is there. */
export function ensureInstalled() {
  if (!existsSync(path.join(installed, 'package.json'))) {
    execFileSync(process.execPath, [path.join(root, 'tests/support/install-package.mjs')], { stdio: 'inherit' });
  }
}

const html = (script) =>
  `<!doctype html>\n<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>app</title></head>\n<body><pre id="out"></pre>${script}</body></html>\n`;

/** A fresh app folder with `files` ({ name: text }) and the package in node_modules. */
function scaffold(dir, files, { withPackage = true } = {}) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (withPackage) cpSync(installed, path.join(dir, 'node_modules', 'batch-event-processor'), { recursive: true, dereference: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: path.basename(dir), private: true, type: 'module' }));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
}

/** Vite: builds `files` (with `main.js` as the entry) into `dir/dist`; returns that folder. */
export async function buildVite(dir, files, options = {}) {
  const { build } = await import('vite');
  scaffold(dir, { ...files, 'index.html': html('<script type="module" src="/main.js"></script>') }, options);
  await build({ root: dir, configFile: false, logLevel: 'error', build: { outDir: 'dist', emptyOutDir: true } });
  return path.join(dir, 'dist');
}

/** webpack 5: builds `files` (entry `main.js`) into `dir/dist`; returns that folder. */
export async function buildWebpack(dir, files, options = {}) {
  const { default: webpack } = await import('webpack');
  scaffold(dir, files, options);
  const out = path.join(dir, 'dist');
  const stats = await new Promise((resolve, reject) =>
    webpack(
      {
        mode: 'production',
        context: dir,
        entry: './main.js',
        output: { path: out, publicPath: '/', filename: 'main.js', clean: true },
        performance: { hints: false },
        resolve: { modules: [path.join(dir, 'node_modules'), path.join(root, 'node_modules')] },
      },
      (err, s) => (err ? reject(err) : resolve(s)),
    ),
  );
  if (stats.hasErrors()) throw new Error(stats.toString('errors-only'));
  writeFileSync(path.join(out, 'index.html'), html('<script src="/main.js"></script>'));
  return out;
}

/** esbuild: bundles `files` (entry `main.js`) into `dir/dist` with code splitting, and copies the wasm to `dist/static/bep_bg.wasm`. */
export async function buildEsbuild(dir, files, options = {}) {
  const esbuild = await import('esbuild');
  scaffold(dir, files, options);
  const out = path.join(dir, 'dist');
  await esbuild.build({
    entryPoints: [path.join(dir, 'main.js')],
    bundle: true,
    splitting: true,
    format: 'esm',
    minify: true,
    outdir: out,
    platform: 'browser',
    logLevel: 'error',
    absWorkingDir: dir,
  });
  mkdirSync(path.join(out, 'static'), { recursive: true });
  cpSync(path.join(installed, 'dist', 'bep_bg.wasm'), path.join(out, 'static', 'bep_bg.wasm'));
  writeFileSync(path.join(out, 'index.html'), html('<script type="module" src="/main.js"></script>'));
  return out;
}
