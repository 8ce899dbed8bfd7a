// A static server on 127.0.0.1 for built browser apps (Vite, webpack, esbuild output)
// whose `.wasm` responses the test controls: held back for a while (a slow network),
// answered 404 (a broken deployment), or sent without `application/wasm` (a server that
// does not know the type). Responses are gzipped when the browser asks for it, as any
// real host does, so byte counts in the start-up benchmark are what a user downloads.
// It records every request, and tells when a wasm response was started and finished.
import http from 'node:http';
import zlib from 'node:zlib';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** Content types by file extension, for the files a built app is made of. */
export const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
};

/**
 * The file `pathname` names under `mounts` ({ urlPrefix: dir }; the longest prefix wins, a
 * directory means its index.html), or undefined when no mount holds it or it escapes its mount.
 */
export function mountedFile(mounts, pathname) {
  const mount = Object.keys(mounts)
    .sort((a, b) => b.length - a.length)
    .find((prefix) => pathname.startsWith(prefix));
  if (mount === undefined) return undefined;
  const dir = mounts[mount];
  const file = path.join(dir, pathname.slice(mount.length));
  if (!file.startsWith(dir)) return undefined; // no escaping the mount
  return existsSync(file) && statSync(file).isDirectory() ? path.join(file, 'index.html') : file;
}

/**
 * Serves `mounts` ({ urlPrefix: dir }; the longest prefix wins, `/` maps to index.html).
 * `wasm` (changeable later through `server.wasm`) controls the `.wasm` answers:
 * `{ delayMs = 0, status = 200, type = 'application/wasm' }`; `headers` are added to
 * every HTML answer (e.g. a Content-Security-Policy).
 */
export async function serveApp(mounts, wasm = {}, htmlHeaders = {}) {
  const log = [];
  const state = { wasm: { delayMs: 0, status: 200, type: 'application/wasm', ...wasm } };
  const held = new Set();
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const entry = { method: req.method, path: pathname, status: 404, at: Date.now() };
    log.push(entry);
    const file = mountedFile(mounts, pathname);
    const isWasm = pathname.endsWith('.wasm');
    let timer;
    const send = () => {
      held.delete(timer);
      if (!file || !existsSync(file) || req.method !== 'GET' || (isWasm && state.wasm.status !== 200)) {
        entry.status = isWasm && state.wasm.status !== 200 ? state.wasm.status : 404;
        res.writeHead(entry.status, { 'content-type': 'text/plain' }).end('not found');
        entry.done = Date.now();
        return;
      }
      let body = readFileSync(file);
      const headers = {
        'content-type': isWasm ? state.wasm.type : TYPES[path.extname(file)] || 'application/octet-stream',
        'cache-control': 'no-store',
        ...(path.extname(file) === ".html" ? htmlHeaders : {}),
      };
      if (/\bgzip\b/.test(req.headers['accept-encoding'] || '')) {
        body = zlib.gzipSync(body, { level: 9 });
        headers['content-encoding'] = 'gzip';
      }
      entry.status = 200;
      entry.type = headers['content-type'];
      entry.bytes = body.length;
      res.writeHead(200, headers).end(body, () => {
        entry.done = Date.now();
      });
    };
    const delay = isWasm ? state.wasm.delayMs : 0;
    if (delay > 0) {
      timer = setTimeout(send, delay);
      held.add(timer);
    } else {
      send();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    log,
    /** The current `.wasm` behaviour; assign fields to change it for later requests. */
    get wasm() {
      return state.wasm;
    },
    /** The `.wasm` requests so far. */
    wasmRequests: () => log.filter((e) => e.path.endsWith('.wasm')),
    close: () =>
      new Promise((resolve) => {
        for (const t of held) clearTimeout(t);
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** The args every test gives headless Chromium (no sandbox as root, no background traffic). */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const CHROMIUM = '/usr/bin/chromium';
