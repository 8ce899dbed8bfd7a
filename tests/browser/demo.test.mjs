// The live demo (www/) in headless Chromium: the page loads the built package from
// /pkg/browser.js, batches events to the demo server's collector, survives a failing
// collector, and what the page counts agrees with what the collector received.
//
// Needs: the built package (`make build` -> pkg/dist), the `playwright-core`
// devDependency, and Chromium at /usr/bin/chromium. Writes target/demo.png.
// Run: node --test tests/browser/demo.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startDemoServer } from '../../www/server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WASM = path.join(root, 'pkg', 'dist', 'bep_bg.wasm');
const SCREENSHOT = path.join(root, 'target', 'demo.png');

let server;
let browser;
let page;
const pageErrors = [];
const consoleErrors = [];
const responses = [];

before(async () => {
  // Someone may be rebuilding the package: give them a little time.
  for (let i = 0; i < 60 && !existsSync(WASM); i++) await new Promise((r) => setTimeout(r, 500));
  assert.ok(existsSync(WASM), `${WASM} is missing: run \`make build\` first`);

  server = await startDemoServer({ port: 0 });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    // The browser logs every 5xx / 429 the collector answers on purpose.
    if (m.location()?.url?.includes('/collector/v1/events')) return;
    consoleErrors.push(`${m.type()}: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  page.on('response', (r) => responses.push({ path: new URL(r.url()).pathname, status: r.status(), type: r.headers()['content-type'] }));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** The raw number behind a counter of the page (`stat-…` or `col-…`). */
const counter = (id) => page.getAttribute(`#${id}`, 'data-value').then(Number);

async function counters() {
  return page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll('.counter .v')].map((e) => [e.id, Number(e.dataset.value)])),
  );
}

/** Waits until `check(counters)` holds; fails with the counters it last saw. */
async function waitFor(what, check, timeout = 20000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await counters();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}; counters: ${JSON.stringify(last)}; collector: ${JSON.stringify(collectorTotals())}`);
}

function collectorTotals() {
  const c = server.collector;
  return { mode: c.mode, requests: c.requests, batches: c.batches, events: c.events, unique: c.unique, duplicates: c.duplicates, rejected: c.rejected, abandoned: c.abandoned };
}

test('the page loads the package from /pkg/ with the right MIME types', async () => {
  await page.goto(server.url);
  await page.waitForSelector('body[data-state="ready"]', { state: 'attached', timeout: 15000 });
  // The page runs before the wasm is ready (it loads in the background).
  await page.waitForSelector('#load-status.ready', { timeout: 15000 });
  const find = (p) => responses.find((r) => r.path === p);
  assert.equal(find('/pkg/browser.js')?.status, 200);
  assert.match(find('/pkg/browser.js').type, /^text\/javascript/);
  assert.equal(find('/pkg/dist/bep_bg.wasm')?.status, 200);
  assert.equal(find('/pkg/dist/bep_bg.wasm').type, 'application/wasm');
  assert.match(find('/app.mjs')?.type ?? '', /^text\/javascript/);
  assert.match(find('/style.css')?.type ?? '', /^text\/css/);
  assert.match(await page.textContent('#load-status'), /^wasm ready in \d+ ms \(package imported in \d+ ms\)$/);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});

test('a burst of 1000: the page and the collector agree', async () => {
  await page.click('#burst');
  const c = await waitFor(
    'sent == collector events == 1000',
    (c) => c['stat-dispatched'] === 1000 && c['col-events'] === 1000 && c['stat-queued'] === 0 && c['stat-inFlight'] === 0,
  );
  assert.equal(c['stat-batches'], 100, 'batchSize 10');
  assert.equal(c['col-batches'], 100);
  assert.equal(c['stat-bytesSent'], c['col-bytes'], 'bytes sent == bytes received');
  assert.ok(c['stat-bytesSent'] > 100_000);
  for (const k of ['stat-retried', 'stat-failed', 'stat-dropped', 'col-rejected', 'col-duplicates']) assert.equal(c[k], 0, k);
  assert.equal(server.collector.events, 1000);
  assert.equal(server.collector.unique, 1000, 'every event arrived exactly once');
  await page.waitForSelector('#agree[data-state="agree"]', { timeout: 5000 });

  // The table lists the last LogEvents; their JSON opens in a <details>.
  const rows = await page.$$('#batch-rows tr');
  assert.ok(rows.length >= 10, `${rows.length} rows`);
  await page.click('#batch-rows tr:first-child summary');
  const json = await page.textContent('#batch-rows tr.json pre');
  const logEvent = JSON.parse(json.slice(json.indexOf('{')));
  assert.equal(logEvent.httpVerb, 'POST');
  assert.match(logEvent.url, /\/collector\/v1\/events\?session=/);
  assert.equal(logEvent.params.enrich_decisions, true);
  assert.equal(logEvent.params.account_id, '12345');
  assert.equal(logEvent.params.visitors.length, 10);
  await page.click('#batch-rows tr:first-child summary'); // closed again
  await page.waitForSelector('#batch-rows tr.json', { state: 'detached', timeout: 5000 });
});

test('a failing collector (500): retries are counted and everything still arrives', async () => {
  await page.click('#fault-500');
  await page.waitForSelector('#mode-label[data-mode="500"]', { timeout: 5000 }); // the switch answered
  assert.equal(server.collector.mode, '500');
  await page.click('#burst');
  await waitFor('retries against the failing collector', (c) => c['stat-retried'] > 0 && c['col-rejected'] > 100 && c['stat-inFlight'] + c['stat-queued'] === 1000);
  assert.equal(await counter('stat-dispatched'), 1000, 'nothing new is delivered while the collector fails');

  await page.click('#fault-ok');
  await page.waitForSelector('#mode-label[data-mode="ok"]', { timeout: 5000 });
  assert.equal(server.collector.mode, 'ok');
  const c = await waitFor(
    'everything delivered after recovery',
    (c) => c['stat-dispatched'] === 2000 && c['col-events'] === 2000 && c['stat-inFlight'] === 0 && c['stat-queued'] === 0,
    30000,
  );
  assert.equal(c['stat-failed'], 0);
  assert.equal(c['stat-dropped'], 0);
  assert.equal(c['col-duplicates'], 0);
  assert.equal(c['stat-batches'], 200);
  assert.equal(c['stat-bytesSent'], c['col-bytes']);
  // Every refused attempt was retried once more: the two sides count the same.
  assert.equal(c['stat-retried'], c['col-rejected']);
  assert.ok(c['stat-retried'] >= 100, `every batch of the burst was retried at least once (${c['stat-retried']})`);
  assert.equal(server.collector.unique, 2000);
  await page.waitForSelector('#agree[data-state="agree"]', { timeout: 5000 });
});

test('options change live, flush() sends what waits, and a screenshot', async () => {
  // A new batchSize recreates the processor (closing the old one).
  await page.fill('input[name="batchSize"]', '50');
  await page.press('input[name="batchSize"]', 'Tab');
  await page.waitForFunction(() => document.querySelector('#gen-label').textContent.startsWith('processor #2'));
  await page.click('#burst');
  await waitFor('the burst in batches of 50', (c) => c['stat-dispatched'] === 3000 && c['col-events'] === 3000);
  assert.equal(await counter('stat-batches'), 220);

  // Three events wait for flushInterval (2 s), unless flush() sends them now.
  await page.fill('input[name="flushInterval"]', '20000');
  await page.press('input[name="flushInterval"]', 'Tab');
  await page.waitForFunction(() => document.querySelector('#gen-label').textContent.startsWith('processor #3'));
  for (const id of ['#one-impression', '#one-conversion', '#one-impression']) await page.click(id);
  await waitFor('three queued events', (c) => c['stat-queued'] === 3);
  await page.click('#flush');
  const c = await waitFor('the flushed batch', (c) => c['stat-dispatched'] === 3003 && c['col-events'] === 3003 && c['stat-queued'] === 0);
  assert.equal(c['stat-batches'], 221);
  await page.waitForSelector('#agree[data-state="agree"]', { timeout: 5000 });
  assert.equal(server.collector.unique, 3003);

  // A screenshot with one LogEvent opened.
  await page.click('#batch-rows tr:first-child summary');
  await page.evaluate(() => window.scrollTo(0, 0));
  await new Promise((r) => setTimeout(r, 400)); // a render tick
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.ok(existsSync(SCREENSHOT));

  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});

test('reloading the page: the unload flush of the processor (a beacon on pagehide) delivers what was queued', async () => {
  // flushInterval is 20 s here (the previous test): three events wait in the queue.
  const before = server.collector.events;
  for (const id of ['#one-conversion', '#one-impression', '#one-conversion']) await page.click(id);
  await waitFor('three queued events', (c) => c['stat-queued'] === 3);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(server.collector.events, before, 'nothing sent before the unload');
  await page.click('#reload');
  await page.waitForSelector('body[data-state="ready"]', { state: 'attached', timeout: 15000 });
  await page
    .waitForFunction(() => /received 3 of them/.test(document.querySelector('#collector-note').textContent), null, { timeout: 10000 })
    .catch(async (e) => {
      const note = await page.textContent('#collector-note');
      assert.fail(`${e.message}\nnote: ${note}\ncollector: ${JSON.stringify(collectorTotals())} (before: ${before})\nrecent: ${JSON.stringify(server.collector.recent.slice(-3))}`);
    });
  assert.equal(server.collector.events, before + 3);
  assert.equal(server.collector.unique, before + 3);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});
