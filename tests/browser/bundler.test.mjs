// The packed package in headless Chromium, imported the two ways a browser app does:
//
//   1. bundled by Vite: `import { BatchEventProcessor } from 'batch-event-processor'`,
//      resolved through the package's `exports` (`browser` condition -> browser.js, whose
//      top-level `await init(new URL('./dist/bep_bg.wasm', import.meta.url))` Vite has to
//      turn into an emitted asset), with no init step in the app;
//   2. without a bundler: `<script type="module">import ... from '/pkg/browser.js'`.
//
// Each page batches events to a real collector on another port of 127.0.0.1 (so the
// default fetch dispatcher goes cross-origin and depends on the collector's CORS
// answers), and reports what it saw (listener LogEvents, `stats()`) into the DOM.
//
// Needs: `node tests/support/install-package.mjs` (run here if the package is missing),
// the `vite` and `playwright-core` devDependencies, and Chromium at /usr/bin/chromium.
// Run: node --test tests/browser/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { build, createLogger } from 'vite';
import { startCollector } from '../support/collector.mjs';
import { mountedFile, TYPES, CHROMIUM, CHROMIUM_ARGS } from './support/app-server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const target = path.join(root, 'target');
const installed = path.join(target, 'consumer', 'node_modules', 'batch-event-processor');
const viteApp = path.join(target, 'vite-app');
const plainApp = path.join(target, 'plain-app');

// ---------------------------------------------------------------------------------------
// The app, shared by both pages: everything it observes ends up in #result as JSON.
const APP_JS = String.raw`
const CONTEXT = { accountId: '12345', projectId: '678', revision: '9', clientName: 'javascript-sdk', clientVersion: '6.6.1', anonymizeIP: true, botFiltering: false };

function event(tag, i) {
  const user = { id: 'visitor-' + (i % 4), attributes: [{ entityId: '101', key: 'city', value: i % 2 ? 'Zürich' : '東京' }] };
  const base = { uuid: tag + '-' + i, timestamp: 1700000000000 + i, context: CONTEXT, user };
  return i % 3 === 2
    ? { ...base, type: 'conversion', event: { id: '55', key: 'purchase' }, revenue: 4200, value: 1.5, tags: { revenue: 4200, value: 1.5 } }
    : { ...base, type: 'impression', layer: { id: '1' }, experiment: { id: '2', key: 'exp' }, variation: { id: '3', key: 'on' },
        ruleKey: 'exp', flagKey: 'flag', ruleType: 'feature-test', enabled: true };
}

const uuidsOf = (params) => params.visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events.map((e) => e.uuid)));

export async function run(BatchEventProcessor, tag) {
  const out = { tag, ok: false, secureContext: globalThis.isSecureContext };
  try {
    const endpoint = new URLSearchParams(location.search).get('endpoint');
    const p = new BatchEventProcessor({ batchSize: 10, flushInterval: 60000, endpoint });
    out.listened = [];
    const id = p.onEventDispatch((logEvent) => {
      const params = logEvent.params;
      out.listened.push({
        url: logEvent.url,
        httpVerb: logEvent.httpVerb,
        headers: logEvent.headers,
        bodyBytes: new TextEncoder().encode(logEvent.body).length,
        bodyIsString: typeof logEvent.body === 'string',
        accountId: params.account_id,
        projectId: params.project_id,
        enrichDecisions: params.enrich_decisions,
        visitors: params.visitors.length,
        uuids: uuidsOf(params),
      });
    });
    out.accepted = [];
    for (let i = 0; i < 25; i++) out.accepted.push(p.process(event(tag, i)));
    out.statsBeforeFlush = p.stats();
    await p.flush();
    out.statsAfterFlush = p.stats();
    for (let i = 25; i < 28; i++) out.accepted.push(p.process(event(tag, i)));
    await p.close();
    out.statsAfterClose = p.stats();
    try {
      p.process(event(tag, 99));
      out.processAfterClose = 'no error';
    } catch (e) {
      out.processAfterClose = { name: e.name, message: e.message };
    }
    out.removed = [p.removeOnEventDispatch(id), p.removeOnEventDispatch(id)];
    out.ok = true;
  } catch (e) {
    out.error = String(e && e.stack || e);
  }
  document.getElementById('result').textContent = JSON.stringify(out);
  document.body.dataset.state = 'done';
}
`;

const RESULT_HTML = '<pre id="result"></pre>';

// ---------------------------------------------------------------------------------------
// A static HTTP server on 127.0.0.1: `mounts` maps URL prefixes to directories.
const MIME = {
  ...TYPES,
  '.svg': 'image/svg+xml',
  '.ts': 'text/plain',
};

async function serveStatic(mounts) {
  const log = [];
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const entry = { method: req.method, path: pathname, status: 404, type: undefined };
    log.push(entry);
    const file = mountedFile(mounts, pathname);
    if (!file || !existsSync(file) || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    entry.status = 200;
    entry.type = MIME[path.extname(file)] || 'application/octet-stream';
    res.writeHead(200, { 'content-type': entry.type, 'cache-control': 'no-store' }).end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    log,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------
let browser;
let collector;
const cleanups = [];

before(async () => {
  if (!existsSync(path.join(installed, 'package.json'))) {
    execFileSync(process.execPath, [path.join(root, 'tests/support/install-package.mjs')], { stdio: 'inherit' });
  }
  collector = await startCollector();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await browser?.close();
  await collector?.close();
});

/** Opens `url` in a fresh page, waits for the app's result and returns it with diagnostics. */
async function openApp(url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors = [];
  const consoleErrors = [];
  const responses = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('response', (r) => responses.push({ url: r.url(), status: r.status(), type: r.headers()['content-type'] }));
  try {
    await page.goto(url);
    try {
      await page.waitForSelector('body[data-state="done"]', { state: 'attached', timeout: 20000 });
    } catch (e) {
      throw new Error(`page never reported a result: ${e.message}\npage errors: ${JSON.stringify(pageErrors)}\nconsole: ${JSON.stringify(consoleErrors)}`);
    }
    const result = JSON.parse(await page.textContent('#result'));
    const origin = new URL(page.url()).origin;
    return { result, pageErrors, consoleErrors, responses, origin };
  } finally {
    await context.close();
  }
}

/** What both pages must show: every uuid delivered cross-origin, listeners and stats right. */
function assertDelivered({ result, pageErrors, consoleErrors, responses, origin }, tag, from) {
  assert.equal(result.error, undefined, `app threw: ${result.error}`);
  assert.equal(result.ok, true);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);

  // The wasm came over HTTP with the MIME type instantiateStreaming needs.
  const wasm = responses.filter((r) => r.url.endsWith('.wasm'));
  assert.equal(wasm.length, 1, `wasm fetched once: ${JSON.stringify(responses)}`);
  assert.equal(wasm[0].status, 200);
  assert.equal(wasm[0].type, 'application/wasm');

  const expected = Array.from({ length: 28 }, (_, i) => `${tag}-${i}`);
  assert.deepEqual(result.accepted, expected.map(() => true));

  // The collector (another port: cross-origin) got every uuid exactly once.
  const reqs = collector.requests.slice(from);
  assert.notEqual(origin, new URL(collector.url).origin);
  assert.equal(reqs.length, 4, `4 batches (10, 10, 5 on flush, 3 on close), got ${reqs.length}`);
  for (const r of reqs) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/v1/events');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers.origin, origin, 'a cross-origin fetch from the page');
    assert.equal(r.status, 200);
    assert.equal(r.json.account_id, '12345');
    assert.equal(r.json.enrich_decisions, true);
  }
  const received = reqs.flatMap((r) => r.json.visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events.map((e) => e.uuid))));
  assert.deepEqual([...received].sort(), [...expected].sort());
  // The three batches of the flush phase may arrive in any order (concurrent fetches).
  const sizes = reqs.map((r) => r.json.visitors.length);
  assert.deepEqual([...sizes.slice(0, 3)].sort((a, b) => a - b), [5, 10, 10], `batch sizes ${sizes}`);
  assert.equal(sizes[3], 3, `batch sizes ${sizes}`);
  // Non-ASCII attribute values arrive intact.
  const values = reqs.flatMap((r) => r.json.visitors.flatMap((v) => v.attributes.map((a) => a.value)));
  assert.ok(values.includes('Zürich') && values.includes('東京'), JSON.stringify(values));

  // onEventDispatch listener: one call per batch, `logEvent.params` parsed in the page.
  assert.equal(result.listened.length, 4);
  for (const l of result.listened) {
    assert.equal(l.url, collector.url);
    assert.equal(l.httpVerb, 'POST');
    assert.deepEqual(l.headers, { 'Content-Type': 'application/json' });
    assert.equal(l.bodyIsString, true);
    assert.equal(l.accountId, '12345');
    assert.equal(l.projectId, '678');
    assert.equal(l.enrichDecisions, true);
  }
  assert.deepEqual(result.listened.flatMap((l) => l.uuids).sort(), [...expected].sort());
  assert.deepEqual(
    result.listened.map((l) => l.bodyBytes).sort((a, b) => a - b),
    reqs.map((r) => Buffer.byteLength(r.body)).sort((a, b) => a - b),
    'the listener saw the exact bytes that were sent',
  );

  // stats() in the page.
  const before = result.statsBeforeFlush;
  assert.equal(before.queued + before.inFlight + before.dispatched, 25, JSON.stringify(before));
  assert.equal(before.dropped, 0);
  const flushBytes = reqs.slice(0, 3).reduce((n, r) => n + Buffer.byteLength(r.body), 0);
  assert.deepEqual(result.statsAfterFlush, {
    queued: 0, inFlight: 0, dispatched: 25, batches: 3, retried: 0, failed: 0, dropped: 0, bytesSent: flushBytes,
  });
  assert.deepEqual(result.statsAfterClose, {
    queued: 0, inFlight: 0, dispatched: 28, batches: 4, retried: 0, failed: 0, dropped: 0,
    bytesSent: flushBytes + Buffer.byteLength(reqs[3].body),
  });

  assert.equal(result.processAfterClose.name, 'Error');
  assert.match(result.processAfterClose.message, /closed/);
  assert.deepEqual(result.removed, [true, false]);
}

// ---------------------------------------------------------------------------------------
test('a Vite-built app imports the package with no init step and sends events cross-origin', { timeout: 45000 }, async (t) => {
  rmSync(viteApp, { recursive: true, force: true });
  mkdirSync(viteApp, { recursive: true });
  // The package as npm installed it, found the way a bundler finds a dependency.
  cpSync(installed, path.join(viteApp, 'node_modules', 'batch-event-processor'), { recursive: true, dereference: true });
  writeFileSync(path.join(viteApp, 'package.json'), JSON.stringify({ name: 'vite-app', private: true, type: 'module' }));
  writeFileSync(path.join(viteApp, 'app.js'), APP_JS);
  writeFileSync(
    path.join(viteApp, 'main.js'),
    "import { BatchEventProcessor } from 'batch-event-processor';\nimport { run } from './app.js';\n\nrun(BatchEventProcessor, 'vite');\n",
  );
  writeFileSync(
    path.join(viteApp, 'index.html'),
    `<!doctype html>\n<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>vite app</title></head>\n<body>${RESULT_HTML}<script type="module" src="/main.js"></script></body></html>\n`,
  );

  // Collect Vite's warnings (wasm, top-level await, ...) so they show in the report.
  const warnings = [];
  const logger = createLogger('warn', { allowClearScreen: false });
  const { warn, error } = logger;
  logger.warn = (msg, opts) => {
    warnings.push(`warn: ${msg}`);
    warn(msg, opts);
  };
  logger.warnOnce = logger.warn;
  logger.error = (msg, opts) => {
    warnings.push(`error: ${msg}`);
    error(msg, opts);
  };
  const modules = [];
  const started = Date.now();
  await build({
    root: viteApp,
    configFile: false,
    logLevel: 'warn',
    customLogger: logger,
    build: { outDir: 'dist', emptyOutDir: true },
    plugins: [
      {
        name: 'record-modules',
        buildEnd() {
          modules.push(...this.getModuleIds());
        },
      },
    ],
  });
  const buildMs = Date.now() - started;
  if (warnings.length) t.diagnostic(`vite warnings: ${warnings.join(' | ')}`);

  // Resolved through `exports` with the browser condition: browser.js, not node/workerd.
  const pkgModules = modules.map((m) => m.replaceAll('\\', '/')).filter((m) => m.includes('/node_modules/batch-event-processor/'));
  assert.ok(pkgModules.some((m) => m.endsWith('/batch-event-processor/browser.js')), `modules: ${pkgModules.join(', ')}`);
  assert.ok(!pkgModules.some((m) => /\/(node\.js|node\.cjs|workerd\.js)$/.test(m)), `modules: ${pkgModules.join(', ')}`);

  // The wasm is emitted as an asset next to the bundle; nothing points back at node_modules.
  const dist = path.join(viteApp, 'dist');
  const assets = readdirSync(path.join(dist, 'assets'));
  assert.equal(assets.filter((f) => f.endsWith('.wasm')).length, 1, `assets: ${assets.join(', ')}`);
  const bundle = assets.filter((f) => f.endsWith('.js')).map((f) => readFileSync(path.join(dist, 'assets', f), 'utf8')).join('\n');
  assert.doesNotMatch(bundle, /node_modules|node:fs|readFileSync/);

  const server = await serveStatic({ '/': dist });
  cleanups.push(server.close);
  const from = collector.requests.length;
  const seen = await openApp(`${server.origin}/?endpoint=${encodeURIComponent(collector.url)}`);
  assertDelivered(seen, 'vite', from);
  const wasmServed = server.log.filter((e) => e.path.endsWith('.wasm'));
  assert.deepEqual(wasmServed.map((e) => [e.status, e.type]), [[200, 'application/wasm']]);
  t.diagnostic(`vite build ${buildMs} ms`);
});

test('a plain <script type="module"> page imports /pkg/browser.js with no bundler and sends events cross-origin', { timeout: 30000 }, async () => {
  rmSync(plainApp, { recursive: true, force: true });
  mkdirSync(plainApp, { recursive: true });
  writeFileSync(path.join(plainApp, 'app.js'), APP_JS);
  writeFileSync(
    path.join(plainApp, 'index.html'),
    `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>plain page</title></head>
<body>${RESULT_HTML}
<script type="module">
  import { BatchEventProcessor } from '/pkg/browser.js';
  import { run } from '/app.js';
  run(BatchEventProcessor, 'plain');
</script>
</body></html>
`,
  );
  const server = await serveStatic({ '/pkg/': installed, '/': plainApp });
  cleanups.push(server.close);
  const from = collector.requests.length;
  const seen = await openApp(`${server.origin}/?endpoint=${encodeURIComponent(collector.url)}`);
  assertDelivered(seen, 'plain', from);
  const wasmServed = server.log.filter((e) => e.path.endsWith('.wasm'));
  assert.deepEqual(wasmServed.map((e) => [e.path, e.status, e.type]), [['/pkg/dist/bep_bg.wasm', 200, 'application/wasm']]);
});
