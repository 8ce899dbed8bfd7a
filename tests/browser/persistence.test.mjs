// Persistence and offline in real headless Chromium: unconfirmed batches survive a
// reload in localStorage and are sent exactly once, even with two tabs; a throwing
// localStorage does not break processing; offline holds batches until `online`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startCollector } from '../support/collector.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './support/app-server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkgDir = path.join(root, 'target/consumer/node_modules/batch-event-processor');

let browser;
let site;
let collector;
let down = false;

const APP = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>app</title>
<script type="module">
import { BatchEventProcessor, ready } from '/pkg/browser.js';
const q = new URLSearchParams(location.search);
if (q.get('brokenStorage')) Storage.prototype.setItem = () => { throw new DOMException('quota', 'QuotaExceededError'); };
window.p = new BatchEventProcessor({
  endpoint: q.get('endpoint'), batchSize: 1000, flushInterval: 600000,
  retry: { maxRetries: 50, initialBackoff: 50, maxBackoff: 200 },
});
window.makeEvent = () => ({
  type: 'conversion', uuid: crypto.randomUUID(),
  context: { accountId: '1', projectId: '2', revision: '3' },
  user: { id: 'visitor-' + Math.random() }, event: { id: '9', key: 'purchase' }, tags: { n: 1 },
});
window.processSome = (n) => { const ids = []; for (let i = 0; i < n; i++) { const e = makeEvent(); p.process(e); ids.push(e.uuid); } return ids; };
// The scenarios below are about a processor whose wasm is ready (issue 14's loading
// cases are in loading.test.mjs).
await ready;
window.ready = true;
</script>`;

before(async () => {
  collector = await startCollector({ status: () => (down ? 503 : 200) });
  site = await startStaticServer({ routes: { '/pkg/': pkgDir }, pages: { '/app.html': APP } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await site?.close();
  await collector?.close();
});

const url = (extra = '') => `http://127.0.0.1:${site.port}/app.html?endpoint=${encodeURIComponent(collector.url)}${extra}`;

async function openTab(context, extra) {
  const tab = await context.newPage();
  await tab.goto(url(extra));
  await tab.waitForFunction(() => window.ready === true);
  return tab;
}

/** How many times each uuid was accepted (2xx) by the collector. */
function deliveries() {
  const n = new Map();
  for (const u of collector.uuids()) n.set(u, (n.get(u) || 0) + 1);
  return n;
}

test('collector down, page reloaded, collector up: every event arrives exactly once', async () => {
  const context = await browser.newContext();
  const tab = await openTab(context);
  down = true;
  const uuids = await tab.evaluate(() => processSome(20));
  await tab.evaluate(() => p.flush()); // fails: 503, waits for a retry
  const stored = await tab.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('bep:v1:batch:')).length);
  assert.ok(stored >= 1, 'the unconfirmed batch is in localStorage');
  await tab.reload();
  await tab.waitForFunction(() => window.ready === true);
  down = false;
  await collector.until(() => uuids.every((u) => deliveries().get(u) >= 1), 10_000);
  await new Promise((r) => setTimeout(r, 500)); // let any duplicate show up
  const d = deliveries();
  assert.deepEqual(uuids.map((u) => d.get(u)), uuids.map(() => 1), 'each uuid exactly once');
  await tab.waitForFunction(() => Object.keys(localStorage).filter((k) => k.startsWith('bep:v1:batch:')).length === 0);
  await context.close();
});

test('two tabs reloading with stored batches: no uuid is sent twice', async () => {
  const context = await browser.newContext();
  const a = await openTab(context);
  const b = await openTab(context);
  down = true;
  const ua = await a.evaluate(() => processSome(15));
  const ub = await b.evaluate(() => processSome(15));
  await Promise.all([a.evaluate(() => p.flush()), b.evaluate(() => p.flush())]);
  await Promise.all([a.reload(), b.reload()]);
  await Promise.all([a.waitForFunction(() => window.ready === true), b.waitForFunction(() => window.ready === true)]);
  down = false;
  const all = [...ua, ...ub];
  await collector.until(() => all.every((u) => deliveries().get(u) >= 1), 10_000);
  await new Promise((r) => setTimeout(r, 500));
  const d = deliveries();
  assert.deepEqual(all.filter((u) => d.get(u) !== 1), [], 'uuids sent more than once');
  await context.close();
});

test('localStorage throwing on setItem: processing still works and the failures are counted', async () => {
  const context = await browser.newContext();
  const tab = await openTab(context, '&brokenStorage=1');
  const uuids = await tab.evaluate(() => processSome(5));
  await tab.evaluate(() => p.flush());
  await collector.until(() => uuids.every((u) => deliveries().get(u) >= 1), 5000);
  const errors = await tab.evaluate(() => p.storageErrors());
  assert.ok(errors >= 1, `${errors} storage errors counted`);
  await context.close();
});

test('offline: batches are held (no retry storm) and sent on the online event', async () => {
  const context = await browser.newContext();
  const tab = await openTab(context);
  const from = collector.requests.length;
  await context.setOffline(true);
  assert.equal(await tab.evaluate(() => navigator.onLine), false);
  const uuids = await tab.evaluate(() => processSome(5));
  await tab.evaluate(() => p.flush());
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(collector.requests.length, from, 'nothing is attempted while offline');
  assert.equal(await tab.evaluate(() => p.stats().retried), 0);
  await context.setOffline(false);
  await collector.until(() => uuids.every((u) => deliveries().get(u) >= 1), 5000);
  await context.close();
});
