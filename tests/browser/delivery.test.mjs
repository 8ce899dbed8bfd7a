// Sending in real headless Chromium where the browser differs from Node (issue 15 item 5):
// with `redirect: 'manual'` a browser hides the redirect behind an opaque response of
// status 0; the batch must still be given up at once, and nothing followed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startFaultyCollector } from '../support/faulty-collector.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './support/app-server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkgDir = path.join(root, 'target/consumer/node_modules/batch-event-processor');

let browser;
let site;
let collector;
let status = 302;

before(async () => {
  collector = await startFaultyCollector({ redirectTo: '/v1/elsewhere', pick: (r) => (r.url === '/v1/events' ? String(status) : 'ok') });
  site = await startStaticServer({
    routes: { '/pkg/': pkgDir },
    pages: {
      '/app.html': `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>t</title>
<script type="module">
import { BatchEventProcessor } from '/pkg/browser.js';
window.send = async (endpoint) => {
  const p = new BatchEventProcessor({ endpoint, batchSize: 2, storage: false, retry: { maxRetries: 3, initialBackoff: 10, maxBackoff: 10 } });
  const errors = [];
  p.onDispatchError((e) => errors.push(e));
  for (let i = 0; i < 2; i++) {
    p.process({ type: 'conversion', uuid: crypto.randomUUID(), context: { accountId: '1', projectId: '2' }, user: { id: 'v' }, event: { id: '9', key: 'k' } });
  }
  const summary = await p.close({ timeout: 3000 });
  return { summary, errors, stats: p.stats() };
};
window.ready = true;
</script>`,
    },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await site?.close();
  await collector?.close();
});

test('Chromium: a redirect (an opaque response, status 0) gives the batch up at once and is not followed', async () => {
  const tab = await browser.newPage();
  const pageErrors = [];
  tab.on('pageerror', (e) => pageErrors.push(e.message));
  await tab.goto(`http://127.0.0.1:${site.port}/app.html`);
  await tab.waitForFunction(() => window.ready === true);
  for (status of [301, 302, 303, 307, 308]) {
    const from = collector.requests.length;
    const { summary, errors, stats } = await tab.evaluate((endpoint) => window.send(endpoint), collector.url);
    const label = `HTTP ${status}`;
    assert.deepEqual(collector.requests.slice(from).map((r) => `${r.method} ${r.url}`), ['POST /v1/events'], label);
    assert.deepEqual(summary, { dispatched: 0, failed: 2, pending: 0 }, label);
    assert.equal(stats.dispatched + stats.failed + stats.queued + stats.inFlight, 2, label);
    assert.equal(errors.length, 1, label);
    assert.equal(errors[0].status, 0, label);
    assert.equal(errors[0].reason, 'rejected', label);
    assert.match(errors[0].message, /after a redirect: the endpoint redirected it, and redirects are not followed/, label);
  }
  assert.deepEqual(pageErrors, []);
  await tab.close();
});
