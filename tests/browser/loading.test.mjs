// Loading the package in a web app without getting in its way (issue 14), in real
// headless Chromium, with apps built by Vite, webpack 5 and esbuild from the packed
// package, served by a server that holds back, breaks or mistypes the wasm response:
//   - the app's own code runs before the wasm arrives; what it processed meanwhile is
//     delivered once it does (in order, to listeners subscribed early, flush() waited);
//   - a page left before the wasm arrives: its events are delivered by the next page;
//   - a 404 for the wasm: `ready` rejects with a clear message, the error listener hears
//     it once, nothing throws from process(), the events are kept for a later page;
//   - webpack 5 and esbuild bundles (esbuild: wasm copied by the app, `init(url)`) load
//     and deliver, the webpack one from a server that does not send application/wasm.
// Needs the package built (make build); run: node --test tests/browser/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startCollector } from '../support/collector.mjs';
import { serveApp, CHROMIUM, CHROMIUM_ARGS } from './support/app-server.mjs';
import { buildEsbuild, buildVite, buildWebpack, ensureInstalled, root } from './support/apps.mjs';

// The app: every step it takes is written into `window.log`.
const app = (initLine = '') => `import { BatchEventProcessor, ready, init } from 'batch-event-processor';
${initLine}
const log = (window.log = { appStart: performance.now(), batches: [], errors: [], accepted: [] });
const q = new URLSearchParams(location.search);
const tag = q.get('tag');
ready.then(
  () => { log.readyAt = performance.now(); },
  (e) => { log.readyAt = performance.now(); log.readyError = e.message; },
);
window.BEP = BatchEventProcessor;
const p = (window.p = new BatchEventProcessor({ endpoint: q.get('endpoint'), batchSize: 10, flushInterval: 60000 }));
p.onEventDispatch((logEvent) => {
  log.batches.push(logEvent.params.visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events.map((e) => e.uuid))));
});
p.onDispatchError((e) => log.errors.push(e));
window.makeEvent = (uuid) => ({
  type: 'conversion', uuid,
  context: { accountId: '12345', projectId: '678', revision: '9' },
  user: { id: 'visitor-' + uuid, attributes: [{ entityId: '101', key: 'city', value: 'Zürich' }] },
  event: { id: '55', key: 'purchase' }, tags: { n: 1 },
});
for (let i = 0; i < Number(q.get('n') || 5); i++) log.accepted.push(p.process(makeEvent(tag + '-' + i)));
log.statsEarly = p.stats();
window.invalidEvent = () => ({ type: 'conversion', context: { projectId: '1' }, user: { id: 'u' }, event: { id: '1', key: 'k' } });
try {
  p.process(invalidEvent());
} catch (e) {
  log.invalidEarly = { name: e.name, message: e.message };
}
// LogEvents from the Optimizely SDK (forwarding processor): the outline is checked now,
// the rest when the module takes them.
window.logEventFor = (uuid, visitorId = 'v-' + uuid) => ({
  url: 'https://logx.optimizely.com/v1/events', httpVerb: 'POST',
  params: { account_id: '12345', project_id: '678', revision: '9', enrich_decisions: true,
    visitors: [{ visitor_id: visitorId, attributes: [], snapshots: [{ events: [{ entity_id: '55', key: 'purchase', uuid, timestamp: 1700000000000 }] }] }] },
});
if (q.get('logEvents')) {
  const d = p.asEventDispatcher();
  log.dispatched = [];
  d.dispatchEvent(logEventFor(tag + '-log')).then((r) => log.dispatched.push(r));
  d.dispatchEvent(logEventFor(tag + '-bad', 42)).then((r) => log.dispatched.push(r));
  try {
    p.processLogEvent({ url: 'x', params: {} });
  } catch (e) {
    log.badOutline = e.message;
  }
}
p.flush().then(() => {
  log.flushedAt = performance.now();
  log.statsAfterFlush = p.stats();
});
`;

let browser;
let collector;
let vite;
const servers = [];

before(async () => {
  ensureInstalled();
  collector = await startCollector();
  vite = await buildVite(path.join(root, 'target', 'loading', 'vite'), { 'main.js': app() });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  for (const s of servers) await s.close();
  await collector?.close();
});

async function serve(dist, wasm, headers) {
  const server = await serveApp({ '/': dist }, wasm, headers);
  servers.push(server);
  return server;
}

async function open(context, server, tag, extra = '') {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${server.origin}/?tag=${tag}&endpoint=${encodeURIComponent(collector.url)}${extra}`);
  await page.waitForFunction(() => window.log && window.log.statsEarly);
  return { page, errors };
}

const uuids = (tag, n = 5) => Array.from({ length: n }, (_, i) => `${tag}-${i}`);
const delivered = (tag) => collector.uuids().filter((u) => u.startsWith(tag + '-'));

test('the app runs before the wasm arrives; what it processed meanwhile is delivered once it does', { timeout: 60000 }, async () => {
  const server = await serve(vite, { delayMs: 3000 });
  const context = await browser.newContext();
  const { page, errors } = await open(context, server, 'slow', '&logEvents=1');
  const early = await page.evaluate(() => ({ ...window.log }));
  // The app's code ran, processed, validated and counted with the wasm still held back.
  assert.equal(early.readyAt, undefined, 'ready had not resolved when the app ran');
  assert.equal(server.wasmRequests()[0].done, undefined, 'the wasm response was still held');
  assert.deepEqual(early.accepted, [true, true, true, true, true]);
  assert.deepEqual(early.statsEarly, { queued: 5, inFlight: 0, dispatched: 0, batches: 0, retried: 0, failed: 0, dropped: 0, bytesSent: 0 });
  assert.equal(early.badOutline, 'logEvent.params.visitors must be an array, got undefined');
  assert.deepEqual(early.dispatched, [{ statusCode: 200 }, { statusCode: 200 }], 'SDK LogEvents accepted before ready');
  assert.equal(early.invalidEarly.name, 'TypeError');
  assert.equal(early.invalidEarly.message, 'context.accountId must be a string, got undefined');
  assert.equal(delivered('slow').length, 0);

  // The early flush() waited for the module, then sent the batch.
  await page.waitForFunction(() => window.log.flushedAt !== undefined, null, { timeout: 20000 });
  const log = await page.evaluate(() => window.log);
  assert.ok(log.readyAt - log.appStart >= 2500, `ready ${log.readyAt - log.appStart} ms after the app's first line`);
  assert.ok(log.flushedAt >= log.readyAt);
  assert.deepEqual(delivered('slow'), [...uuids('slow'), 'slow-log'], 'delivered once, in order');
  assert.deepEqual(log.batches, [[...uuids('slow'), 'slow-log']], 'the listener subscribed before ready saw the batch');
  // The LogEvent whose visitor_id is a number: refused by the module, counted, reported.
  assert.deepEqual(log.statsAfterFlush, { ...log.statsAfterFlush, queued: 0, inFlight: 0, dispatched: 6, failed: 1, dropped: 0 });
  assert.equal(log.errors.length, 1, JSON.stringify(log.errors));
  assert.equal(log.errors[0].reason, 'refused');
  assert.equal(log.errors[0].events, 1);
  assert.match(log.errors[0].message, /before it was ready: .*visitor_id must be a string, got 42/);

  // After ready the processor is the wasm one, going on as usual, with the same errors.
  const invalidLate = await page.evaluate(() => {
    try {
      window.p.process(window.invalidEvent());
    } catch (e) {
      return { name: e.name, message: e.message };
    }
  });
  assert.deepEqual(invalidLate, early.invalidEarly);
  // Made after ready: the wasm class itself; `instanceof` holds for both kinds.
  const kinds = await page.evaluate(() => {
    const q = new window.BEP({ storage: false });
    const r = { late: q instanceof window.BEP, early: window.p instanceof window.BEP, wasm: q.constructor !== window.BEP };
    q.close();
    return r;
  });
  assert.deepEqual(kinds, { late: true, early: true, wasm: true });
  await page.evaluate(() => window.p.process(window.makeEvent('slow-5')));
  await page.evaluate(() => window.p.close());
  await collector.until(() => delivered('slow').length === 7);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a page left before the wasm arrives: the next page delivers its events', { timeout: 60000 }, async () => {
  const server = await serve(vite, { delayMs: 30000 });
  const context = await browser.newContext();
  const { page, errors } = await open(context, server, 'left');
  assert.equal(await page.evaluate(() => window.log.readyAt), undefined);
  // Leaving: the events go to storage (pagehide), the next page (wasm served at once)
  // takes them and sends them with its own.
  server.wasm.delayMs = 0;
  await page.goto(`${server.origin}/?tag=next&endpoint=${encodeURIComponent(collector.url)}`);
  await page.waitForFunction(() => window.log && window.log.flushedAt !== undefined, null, { timeout: 20000 });
  await collector.until(() => delivered('left').length >= 5 && delivered('next').length >= 5);
  assert.deepEqual(delivered('left'), uuids('left'), 'every event of the page left, once, in order');
  assert.deepEqual(delivered('next'), uuids('next'));
  const left = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('bep:v1:early:')));
  assert.deepEqual(left, [], 'the entry was taken');
  assert.deepEqual(errors, []);
  await context.close();
});

test('close() before ready keeps its deadline: past it, the events stay stored for the next page; within it, they are sent', { timeout: 60000 }, async () => {
  const server = await serve(vite, { delayMs: 8000 });
  const context = await browser.newContext();
  const { page, errors } = await open(context, server, 'deadline');
  const closed = await page.evaluate(async () => {
    const summary = await window.p.close({ timeout: 300 });
    let after;
    try {
      window.p.process(window.makeEvent('deadline-x'));
    } catch (e) {
      after = e.message;
    }
    return { summary, after };
  });
  assert.equal(server.wasmRequests()[0].done, undefined, 'close() resolved while the wasm was still held');
  assert.deepEqual(closed.summary, { dispatched: 0, failed: 0, pending: 5 });
  assert.match(closed.after, /closed/);
  // Within its deadline: close() waits for the module, then sends and resolves.
  server.wasm.delayMs = 1500;
  await page.goto(`${server.origin}/?tag=within&endpoint=${encodeURIComponent(collector.url)}`);
  await page.waitForFunction(() => window.log && window.log.statsEarly);
  const summary = await page.evaluate(() => window.p.close({ timeout: 20000 }));
  assert.deepEqual(summary, { dispatched: 5, failed: 0, pending: 0 });
  assert.deepEqual(delivered('within'), uuids('within'));
  // A processor closing at once takes nothing stored; the next page takes what the first kept.
  assert.equal(delivered('deadline').length, 0);
  server.wasm.delayMs = 0;
  await page.goto(`${server.origin}/?tag=third&endpoint=${encodeURIComponent(collector.url)}`);
  await collector.until(() => delivered('deadline').length >= 5);
  assert.deepEqual(delivered('deadline'), uuids('deadline'));
  assert.deepEqual(errors, []);
  await context.close();
});

test('wasm 404: ready rejects clearly, the error listener hears it once, process() never throws, events kept for a later page', { timeout: 60000 }, async () => {
  const server = await serve(vite, { status: 404 });
  const context = await browser.newContext();
  const { page, errors } = await open(context, server, 'missing');
  await page.waitForFunction(() => window.log.readyError !== undefined && window.log.flushedAt !== undefined, null, { timeout: 20000 });
  // After the failure: more events accepted (no throw), close() resolves.
  const after = await page.evaluate(async () => {
    const accepted = [5, 6].map((i) => window.p.process(window.makeEvent('missing-' + i)));
    await new Promise((r) => setTimeout(r, 50));
    const stats = window.p.stats();
    const closed = await window.p.close({ timeout: 1000 });
    const stored = Object.keys(localStorage)
      .filter((k) => k.startsWith('bep:v1:early:'))
      .flatMap((k) => JSON.parse(localStorage.getItem(k)).events.length);
    return { accepted, stats, closed, stored, log: window.log };
  });
  const log = after.log;
  assert.match(log.readyError, /^batch-event-processor: could not load its wasm module from .*bep_bg.*\.wasm: HTTP 404/);
  assert.equal(log.errors.length, 1, JSON.stringify(log.errors));
  assert.equal(log.errors[0].reason, 'load-failed');
  assert.equal(log.errors[0].events, 5);
  assert.match(log.errors[0].message, /HTTP 404.*5 event\(s\) kept in storage/);
  assert.deepEqual(after.accepted, [true, true]);
  assert.equal(after.stats.queued, 7);
  assert.deepEqual(after.closed, { dispatched: 0, failed: 0, pending: 7 });
  assert.deepEqual(after.stored, [7]);
  assert.deepEqual(errors, [], 'no unhandled rejection, nothing thrown');
  assert.equal(delivered('missing').length, 0);

  // The wasm is back: a later page sends what the broken one kept.
  server.wasm.status = 200;
  await page.goto(`${server.origin}/?tag=later&endpoint=${encodeURIComponent(collector.url)}`);
  await collector.until(() => delivered('missing').length >= 7);
  assert.deepEqual(delivered('missing'), uuids('missing', 7));
  await context.close();
});

test("a Content-Security-Policy without 'wasm-unsafe-eval': ready rejects and says what the policy needs; with it, events are delivered", { timeout: 60000 }, async () => {
  const strict = await serve(vite, {}, { 'content-security-policy': "script-src 'self'" });
  const context = await browser.newContext();
  const { page, errors } = await open(context, strict, 'csp');
  await page.waitForFunction(() => window.log.readyError !== undefined, null, { timeout: 20000 });
  const log = await page.evaluate(() => window.log);
  assert.match(log.readyError, /^batch-event-processor: could not load its wasm module from .*: .*'wasm-unsafe-eval'/);
  assert.deepEqual(log.errors.map((e) => e.reason), ['load-failed']);
  assert.deepEqual(errors, []);
  const allowed = await serve(vite, {}, { 'content-security-policy': "script-src 'self' 'wasm-unsafe-eval'" });
  await page.goto(`${allowed.origin}/?tag=csp-ok&endpoint=${encodeURIComponent(collector.url)}`);
  await page.waitForFunction(() => window.log && window.log.flushedAt !== undefined, null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.log.readyError), undefined);
  assert.deepEqual(delivered('csp-ok'), uuids('csp-ok'));
  await context.close();
});

for (const [name, build, initLine, wasm] of [
  ['webpack 5', buildWebpack, '', { type: 'application/octet-stream' }],
  ['esbuild', buildEsbuild, "init(new URL('/static/bep_bg.wasm', location.href));", {}],
]) {
  test(`a ${name} bundle loads and delivers${wasm.type ? ' (wasm served without application/wasm)' : ' (init(url): the app hosts the wasm)'}`, { timeout: 90000 }, async () => {
    const dist = await build(path.join(root, 'target', 'loading', name.split(' ')[0]), { 'main.js': app(initLine) });
    const server = await serve(dist, wasm);
    const tag = name.split(' ')[0];
    const context = await browser.newContext();
    const { page, errors } = await open(context, server, tag);
    await page.waitForFunction(() => window.log.flushedAt !== undefined, null, { timeout: 20000 });
    const log = await page.evaluate(() => window.log);
    assert.equal(log.readyError, undefined);
    assert.deepEqual(delivered(tag), uuids(tag));
    assert.deepEqual(log.batches, [uuids(tag)]);
    const requests = server.wasmRequests();
    assert.equal(requests.length, 1, JSON.stringify(server.log));
    assert.equal(requests[0].status, 200);
    if (initLine) assert.equal(requests[0].path, '/static/bep_bg.wasm');
    assert.deepEqual(errors, []);
    await context.close();
  });
}
