// The Next.js example (www/nextjs/) on Vercel's edge runtime, as a user would run it:
// `next build`, then `next start` on 127.0.0.1, with the middleware processing one event
// per request and flushing with the request's `waitUntil` to a real collector.
//
// The package is the packed one (target/consumer, see tests/support/install-package.mjs);
// the app is a copy of www/nextjs inside target/consumer so that it resolves
// 'batch-event-processor' from there, through the `edge-light` export condition.
// next, react and react-dom are the repository's devDependencies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { startCollector } from '../support/collector.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const app = path.join(root, 'target/consumer/nextjs-app');
const NEXT = path.join(root, 'node_modules/.bin/next');
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };

let collector;
let server;
let base;

/** Runs `next <args>` in the app; resolves with its output, rejects on a non-zero exit. */
function next(args, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(NEXT, args, { cwd: app, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`next ${args.join(' ')} exited ${code}:\n${out.slice(-3000)}`))));
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  rmSync(app, { recursive: true, force: true });
  cpSync(path.join(root, 'www/nextjs'), app, { recursive: true });
  collector = await startCollector();
});

after(async () => {
  if (server && server.exitCode === null) {
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      // gone already
    }
  }
  await collector?.close();
});

test('next build compiles the middleware for the edge runtime with the wasm as a module', { timeout: 600_000 }, async (t) => {
  const started = Date.now();
  const out = await next(['build']);
  t.diagnostic(`next build: ${Math.round((Date.now() - started) / 1000)} s`);
  assert.match(out, /Proxy \(Middleware\)|Middleware/);
  const manifest = JSON.parse(readFileSync(path.join(app, '.next/server/middleware-manifest.json'), 'utf8'));
  const middleware = manifest.middleware['/'];
  assert.ok(middleware, `middleware in the edge manifest: ${JSON.stringify(manifest)}`);
  // An edge function with the package's wasm bound as a module (the edge-light entry):
  // the Node entry would read the file with node:fs, which the edge runtime lacks.
  assert.ok(middleware.files.every((f) => f.startsWith('server/edge/')), middleware.files.join(', '));
  assert.ok(middleware.wasm.some((w) => /bep_bg.*\.wasm$/.test(w.filePath)), JSON.stringify(middleware.wasm));
});

test('next start: every request sends its event to the collector, each exactly once', { timeout: 120_000 }, async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(NEXT, ['start', '-H', '127.0.0.1', '-p', String(port)], {
    cwd: app,
    env: { ...env, EVENTS_ENDPOINT: collector.url },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  server.stdout.on('data', (d) => (log += d));
  server.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await fetch(`${base}/_next/static/missing`); // not matched by the middleware
      break;
    } catch {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error(`next start did not come up:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const ids = Array.from({ length: 25 }, (_, i) => `edge-${i}-${Math.random().toString(16).slice(2)}`);
  // Concurrent requests, as traffic comes: each one's flush outlives its response.
  const answers = await Promise.all(
    ids.map((id, i) => fetch(`${base}/${i % 2 ? '' : `products/${i}`}`, { headers: { 'x-event-id': id, cookie: `visitor=v${i % 5}` } })),
  );
  assert.deepEqual(answers.map((r) => r.status).filter((s) => s >= 500), [], `server errors:\n${log.slice(-2000)}`);
  await collector.until(() => ids.every((id) => collector.uuids().includes(id)), 15_000).catch((e) => {
    throw new Error(`${e.message}; server log:\n${log.slice(-2000)}`);
  });
  await new Promise((r) => setTimeout(r, 300));
  const counts = new Map();
  for (const u of collector.uuids()) counts.set(u, (counts.get(u) || 0) + 1);
  assert.deepEqual(ids.filter((id) => counts.get(id) !== 1), [], 'each event exactly once');
  // What arrived is the Optimizely EventBatch the middleware built.
  const batch = collector.requests.find((r) => r.json?.visitors?.some((v) => v.snapshots[0].events[0].uuid === ids[0])).json;
  assert.equal(batch.client_name, 'nextjs-edge');
  const visitor = batch.visitors.find((v) => v.snapshots[0].events[0].uuid === ids[0]);
  assert.equal(visitor.visitor_id, 'v0');
  assert.deepEqual(visitor.snapshots[0].events[0].tags, { path: '/products/0' });
  assert.doesNotMatch(log, /Error|error/, 'no errors in the server log');
});
