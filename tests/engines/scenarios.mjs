// The browser scenarios every engine must pass, through our WebDriver helper
// (tests/support/webdriver.mjs): Chromium (chromedriver), Firefox ESR (geckodriver) and
// WebKitGTK's MiniBrowser (WebKitWebDriver under Xvfb). Each engine has its own test
// file beside this one (chromium.test.mjs, ...), which calls `engineSuite(engine)`.
//
// Pages use the packed package as a user would (plain `<script type="module">` from
// /pkg/browser.js, or a Vite bundle importing 'batch-event-processor'), construct the
// processor right after the import, and everything is checked at a real collector on
// 127.0.0.1 (another origin than the page, so the fetch dispatcher goes through CORS).
// Every scenario gets its own static server, so its own origin and its own storage.
//
// Where engines differ, BEHAVIOUR below says how, and the test asserts that engine's
// behaviour: a change in an engine (or in the package) fails the test.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { build } from 'vite';
import { launch } from '../support/webdriver.mjs';
import { startCollector } from '../support/collector.mjs';
import { startStaticServer } from '../support/static-server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const consumer = path.join(root, 'target/consumer');
const pkgDir = path.join(consumer, 'node_modules/batch-event-processor');

/** How the engines differ, measured here; each entry is asserted by a test. */
export const BEHAVIOUR = {
  chromium: {
    // Chromium caps keepalive/beacon bodies in flight from a page being left at 64 KiB:
    // of ~120 KB queued, at least the first body leaves with the page; one refused by
    // the quota (when the first is still in flight) stays persisted and goes with the
    // next page of the site. How much leaves at once depends on timing.
    unloadOver64KB: 'quota',
    // The back/forward cache restores the page (pageshow.persisted === true).
    bfcache: true,
    // Offline is emulated with DevTools' Network.emulateNetworkConditions.
    offline: 'devtools',
    // Web Locks (the exclusive claim of stored batches across tabs) on http://127.0.0.1.
    webLocks: true,
    // A tab behind another one is hidden (visibilitychange to 'hidden').
    backgroundTabHidden: true,
  },
  firefox: {
    // Firefox lets every beacon body (each under 64 KB) leave with the page.
    unloadOver64KB: 'all',
    bfcache: true,
    // Offline is Firefox's own offline mode (Services.io.offline, chrome context).
    offline: 'browser',
    webLocks: true,
    backgroundTabHidden: true,
  },
  webkit: {
    // WebKit caps keepalive/beacon bodies in flight at 64 KiB, as Chromium does.
    unloadOver64KB: 'quota',
    bfcache: true,
    // MiniBrowser keeps a tab behind another one visible.
    backgroundTabHidden: false,
    // WebDriver has no way to take WebKitGTK offline: the page's navigator.onLine is
    // overridden and the offline/online events are dispatched as the engine would.
    offline: 'simulated',
    webLocks: true,
  },
};

const EVENT_JS = String.raw`
let n = 0;
export function makeEvent(size = 0) {
  return {
    type: 'conversion', uuid: crypto.randomUUID ? crypto.randomUUID() : 'u-' + Math.random().toString(16).slice(2) + '-' + (++n),
    context: { accountId: '1', projectId: '2', revision: '3' },
    user: { id: 'visitor-' + (n % 3) }, event: { id: '9', key: 'purchase' },
    tags: size ? { note: 'x'.repeat(size) } : { n: ++n, city: 'Zürich' },
  };
}`;

// The page-side setup shared by the plain page and the bundle: one processor, built
// right after the import; helpers the tests call through WebDriver.
const SETUP_JS = String.raw`
export function setup(BatchEventProcessor, makeEvent, ready) {
  const q = new URLSearchParams(location.search);
  const p = new BatchEventProcessor({
    endpoint: q.get('endpoint'), batchSize: Number(q.get('batchSize') || 1000), flushInterval: 600000,
    retry: { maxRetries: 50, initialBackoff: 50, maxBackoff: 200 },
  });
  window.p = p;
  window.heard = [];
  p.onEventDispatch((logEvent) => window.heard.push(logEvent.params.visitors.length));
  window.processSome = (count, size) => {
    const uuids = [];
    for (let i = 0; i < count; i++) { const e = makeEvent(size); if (p.process(e)) uuids.push(e.uuid); }
    return uuids;
  };
  // Whether any localStorage value holds the text (an event's uuid): storage checked by
  // content, not by the package's key names.
  window.storedHas = (text) => {
    for (let i = 0; i < localStorage.length; i++) if ((localStorage.getItem(localStorage.key(i)) || '').includes(text)) return true;
    return false;
  };
  window.visibility = [];
  document.addEventListener('visibilitychange', () => window.visibility.push(document.visibilityState));
  window.shown = [];
  window.addEventListener('pageshow', (e) => window.shown.push(e.persisted));
  // The scenarios are about a processor whose wasm is ready (loading: tests/browser/loading.test.mjs).
  ready.then(() => { window.appReady = true; });
}`;

const ERRORS_JS = `<script>window.errors = [];
// Capture phase: a module that fails to load fires 'error' on its script element only.
addEventListener('error', (e) => errors.push(e.message ? String(e.message) : 'failed to load ' + (e.target && (e.target.src || e.target.outerHTML || '').slice(0, 120))), true);
addEventListener('unhandledrejection', (e) => errors.push(String(e.reason && e.reason.message || e.reason)));</script>`;

const PLAIN_APP = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>plain app</title>
${ERRORS_JS}
<script type="module">
import { BatchEventProcessor, ready } from '/pkg/browser.js';
import { makeEvent } from '/app/event.js';
import { setup } from '/app/setup.js';
setup(BatchEventProcessor, makeEvent, ready);
</script>`;

const NEXT = '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>next</title><p>next page</p>';

/** Writes the app's modules into a fresh `dir` (served at /app/ for the plain page). */
function writeApp(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'event.js'), EVENT_JS);
  writeFileSync(path.join(dir, 'setup.js'), SETUP_JS);
  return dir;
}

/** Builds the Vite app (bare import of the installed package) once per process. */
let bundled;
function buildBundle(engine) {
  bundled ??= (async () => {
    // Inside the consumer project, so 'batch-event-processor' resolves from its node_modules.
    const dir = writeApp(path.join(consumer, `engines-bundle-${engine}`));
    writeFileSync(
      path.join(dir, 'main.js'),
      "import { BatchEventProcessor, ready } from 'batch-event-processor';\nimport { makeEvent } from './event.js';\nimport { setup } from './setup.js';\nsetup(BatchEventProcessor, makeEvent, ready);\n",
    );
    writeFileSync(
      path.join(dir, 'index.html'),
      `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>bundled app</title>${ERRORS_JS}</head><body><script type="module" src="./main.js"></script></body></html>\n`,
    );
    await build({ root: dir, base: './', configFile: false, logLevel: 'warn', build: { outDir: 'dist', emptyOutDir: true } });
    return path.join(dir, 'dist');
  })();
  return bundled;
}

const received = (collector) => {
  const n = new Map();
  for (const u of collector.uuids()) n.set(u, (n.get(u) || 0) + 1);
  return n;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Registers the scenarios for `engine` with node:test. */
export function engineSuite(engine) {
  const expect = BEHAVIOUR[engine];
  describe(engine, () => {
    let browser;
    let page;
    let collector;
    let down = false;
    const sites = [];
    let appDir;

    before(async () => {
      appDir = writeApp(path.join(consumer, `engines-app-${engine}`));
      collector = await startCollector({ status: () => (down ? 503 : 200) });
      browser = await launch(engine);
      page = await browser.session();
    });

    after(async () => {
      await browser?.close();
      for (const s of sites) await s.close();
      await collector?.close();
    });

    /** A fresh origin serving the plain app, the bundled app and a second page. */
    async function site({ bundle } = {}) {
      const routes = { '/pkg/': pkgDir, '/app/': appDir };
      if (bundle) routes['/bundle/'] = await buildBundle(engine);
      const s = await startStaticServer({
        routes,
        pages: { '/app.html': PLAIN_APP, '/next.html': NEXT },
      });
      sites.push(s);
      const origin = `http://127.0.0.1:${s.port}`;
      const query = (extra = '') => `?endpoint=${encodeURIComponent(collector.url)}${extra}`;
      return {
        app: (extra) => `${origin}/app.html${query(extra)}`,
        bundle: (extra) => `${origin}/bundle/index.html${query(extra)}`,
        next: `${origin}/next.html`,
      };
    }

    async function open(url) {
      await page.goto(url);
      await page.waitFor(() => window.appReady === true, { what: 'the app' }).catch(async (e) => {
        const errors = await page.run(() => window.errors).catch(() => 'unknown');
        throw new Error(`${e.message}; page errors: ${JSON.stringify(errors)}`);
      });
    }

    const errors = () => page.run(() => window.errors);

    test('plain <script type="module"> page: batches, listeners, stats, close', async () => {
      const s = await site();
      await open(s.app('&batchSize=10'));
      const uuids = await page.run(() => processSome(25));
      assert.equal(uuids.length, 25);
      await collector.until(() => uuids.slice(0, 20).every((u) => received(collector).has(u)), 10_000);
      await page.run(() => p.flush());
      const result = await page.run(async () => {
        const summary = await p.close();
        let after;
        try {
          p.process({});
          after = 'no error';
        } catch (e) {
          after = e.message;
        }
        return { heard: window.heard, stats: p.stats(), summary, after };
      });
      assert.deepEqual(result.heard, [10, 10, 5]);
      assert.deepEqual([result.summary.failed, result.summary.pending], [0, 0]);
      assert.deepEqual([result.stats.dispatched, result.stats.batches, result.stats.failed, result.stats.queued], [25, 3, 0, 0]);
      assert.match(result.after, /closed/);
      // The engine APIs the package's browser paths take (else their fallbacks).
      const apis = await page.run(() => ({
        beacon: typeof navigator.sendBeacon === 'function',
        locks: typeof navigator.locks?.request === 'function',
        storage: typeof localStorage?.setItem === 'function',
        pagehide: 'onpagehide' in window,
      }));
      assert.deepEqual(apis, { beacon: true, locks: expect.webLocks, storage: true, pagehide: true }, `${engine} APIs`);
      const d = received(collector);
      assert.deepEqual(uuids.filter((u) => d.get(u) !== 1), [], 'each event exactly once');
      assert.deepEqual(await errors(), []);
    });

    test('bundled app (Vite, bare import through the package exports)', async () => {
      const s = await site({ bundle: true });
      await open(s.bundle('&batchSize=5'));
      const uuids = await page.run(() => processSome(12));
      await page.run(() => p.flush());
      await collector.until(() => uuids.every((u) => received(collector).has(u)), 10_000);
      assert.deepEqual(await page.run(() => window.heard), [5, 5, 2]);
      assert.deepEqual(await errors(), []);
    });
    test('leaving the page sends everything queued before the next page loads (pagehide, beacon as text/plain across origins)', async () => {
      const s = await site();
      await open(s.app());
      const uuids = await page.run(() => processSome(25));
      await sleep(200);
      assert.equal(uuids.filter((u) => received(collector).has(u)).length, 0, 'nothing sent before leaving');
      await page.goto(s.next);
      await collector.until(() => uuids.every((u) => received(collector).has(u)), 10_000);
      const r = collector.requests.find((q) => q.json?.visitors?.some((v) => v.snapshots[0].events[0].uuid === uuids[0]));
      assert.match(r.headers['content-type'], /^text\/plain/, 'cross-origin beacons use a CORS-safelisted type');
      const d = received(collector);
      assert.deepEqual(uuids.filter((u) => d.get(u) !== 1), [], 'each event exactly once');
    });

    test('hidden page: a batch over 64 KB goes in bodies under 64 KB, and the processor keeps working', async (t) => {
      const s = await site();
      await open(s.app());
      const from = collector.requests.length;
      const uuids = await page.run(() => processSome(12, 10_000)); // ~120 KB queued
      await page.run(() => {
        Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await collector.until(() => uuids.every((u) => received(collector).has(u)), 10_000);
      const bodies = collector.requests.slice(from).map((r) => Buffer.byteLength(r.body));
      t.diagnostic(`bodies: ${bodies.join(', ')}`);
      assert.ok(bodies.length >= 2, `${bodies.length} bodies`);
      for (const b of bodies) assert.ok(b <= 64_000, `${b} bytes`);
      const later = await page.run(() => processSome(3));
      await page.run(() => p.flush());
      await collector.until(() => later.every((u) => received(collector).has(u)), 10_000);
    });

    test(`more than 64 KB queued when the page is left: ${expect.unloadOver64KB === 'quota' ? 'at least 64 KB leaves with the page, what the keepalive quota refuses goes with the next page' : 'all of it leaves with the page'}, each event once`, async (t) => {
      const s = await site();
      await open(s.app());
      const uuids = await page.run(() => processSome(12, 10_000)); // ~120 KB queued
      await page.goto(s.next);
      await sleep(1500);
      const first = uuids.filter((u) => received(collector).has(u)).length;
      t.diagnostic(`${first} of ${uuids.length} events left with the page`);
      if (expect.unloadOver64KB === 'quota') {
        assert.ok(first >= uuids.length / 2, `${first} of ${uuids.length} left with the page`);
      } else {
        assert.equal(first, uuids.length, `${first} of ${uuids.length} left with the page`);
      }
      await open(s.app());
      await collector.until(() => uuids.every((u) => received(collector).has(u)), 10_000);
      await sleep(300);
      const d = received(collector);
      assert.deepEqual(uuids.filter((u) => d.get(u) !== 1), [], 'each event exactly once');
    });

    test(`back/forward cache: ${expect.bfcache ? 'the page is restored' : 'the page is reloaded'} and events processed afterwards are sent`, async (t) => {
      const s = await site();
      await open(s.app());
      const before = await page.run(() => processSome(3));
      await page.goto(s.next);
      await collector.until(() => before.every((u) => received(collector).has(u)), 10_000);
      await page.back();
      await page.waitFor(() => window.appReady === true && window.shown.length > 0, { what: 'pageshow' });
      const shown = await page.run(() => window.shown);
      t.diagnostic(`pageshow persisted: ${JSON.stringify(shown)}`);
      assert.equal(shown.at(-1), expect.bfcache, `pageshow.persisted in ${engine}`);
      const more = await page.run(() => processSome(4));
      await page.run(() => p.flush());
      await collector.until(() => more.every((u) => received(collector).has(u)), 10_000);
      const d = received(collector);
      assert.deepEqual([...before, ...more].filter((u) => d.get(u) !== 1), [], 'each event exactly once');
    });

    test('collector down, page reloaded, collector up: every event arrives exactly once', async () => {
      const s = await site();
      await open(s.app());
      down = true;
      try {
        const uuids = await page.run(() => processSome(20));
        await page.run(() => p.flush()); // 503: waits for a retry, persisted meanwhile
        assert.ok(await page.run((u) => storedHas(u), uuids[0]), 'the unconfirmed batch is persisted');
        await page.refresh();
        await page.waitFor(() => window.appReady === true, { what: 'the reloaded app' });
        down = false;
        await collector.until(() => uuids.every((u) => received(collector).has(u)), 15_000);
        await sleep(500); // let any duplicate show up
        const d = received(collector);
        assert.deepEqual(uuids.filter((u) => d.get(u) !== 1), [], 'each event exactly once');
        await page.waitFor((u) => !storedHas(u), { args: [uuids[0]], what: 'the delivered batch removed from storage' });
      } finally {
        down = false;
      }
    });

    test('collector down, two batches of the same visitors, page reloaded: every event arrives exactly once', async () => {
      // The second batch waits behind the first (a visitor's events are never reordered),
      // so it has never been attempted when the page is left: it must not be beaconed to
      // a collector that is failing, where a beacon cannot report the failure.
      const s = await site();
      await open(s.app());
      down = true;
      try {
        const x = await page.run(() => processSome(15));
        await page.run(() => p.flush());
        const y = await page.run(() => processSome(15));
        await page.run(() => p.flush());
        await page.refresh();
        await page.waitFor(() => window.appReady === true, { what: 'the reloaded app' });
        down = false;
        await allArrive(collector, x, y);
        await sleep(500);
        const d = received(collector);
        assert.deepEqual([...x, ...y].filter((u) => d.get(u) !== 1), [], 'each event exactly once');
      } finally {
        down = false;
      }
    });

    test(`two tabs: a batch held by a tab in the background${expect.backgroundTabHidden ? ' (hidden)' : ''} is not taken by a new tab; each event arrives once when the collector is back`, async () => {
      const s = await site();
      await open(s.app());
      const first = await page.windowHandle();
      down = true;
      try {
        const a = await page.run(() => processSome(15));
        await page.run(() => p.flush()); // 503: tab 1 keeps it and retries
        await page.newTab();
        await open(s.app());
        const b = await page.run(() => processSome(15));
        await page.run(() => p.flush());
        await page.switchTo(first);
        const seen = await page.run(() => window.visibility);
        assert.equal(seen.includes('hidden'), expect.backgroundTabHidden, `tab 1 went through ${JSON.stringify(seen)} in ${engine}`);
        await sleep(300);
        down = false;
        const all = [...a, ...b];
        await allArrive(collector, a, b);
        await sleep(1000); // both tabs retry every 50-200 ms: a duplicate shows up by now
        const d = received(collector);
        assert.deepEqual(all.filter((u) => d.get(u) !== 1), [], `events sent more than once (${requestLog(collector, a, b)})`);
      } finally {
        down = false;
        await closeOtherTabs(page, first);
      }
    });

    test('two tabs reloading with stored batches: each stored batch is claimed by one tab, no event sent twice', async () => {
      const s = await site();
      await open(s.app());
      const first = await page.windowHandle();
      down = true;
      try {
        const a = await page.run(() => processSome(15));
        await page.run(() => p.flush());
        const second = await page.newTab();
        await open(s.app());
        const b = await page.run(() => processSome(15));
        await page.run(() => p.flush());
        await page.refresh();
        await page.waitFor(() => window.appReady === true, { what: 'tab 2 reloaded' });
        await page.switchTo(first);
        await page.refresh();
        await page.waitFor(() => window.appReady === true, { what: 'tab 1 reloaded' });
        await page.switchTo(second);
        down = false;
        const all = [...a, ...b];
        await allArrive(collector, a, b);
        await sleep(500);
        const d = received(collector);
        assert.deepEqual(all.filter((u) => d.get(u) !== 1), [], 'uuids sent more than once');
      } finally {
        down = false;
        await closeOtherTabs(page, first);
      }
    });

    test(`offline (${expect.offline}): batches are held with no retry storm and sent on the online event`, async () => {
      const s = await site();
      await open(s.app());
      const from = collector.requests.length;
      await setOffline(page, expect.offline, true);
      try {
        assert.equal(await page.run(() => navigator.onLine), false);
        const uuids = await page.run(() => processSome(5));
        await page.run(() => p.flush());
        await sleep(500);
        assert.equal(collector.requests.length, from, 'nothing is attempted while offline');
        assert.equal(await page.run(() => p.stats().retried), 0);
        await setOffline(page, expect.offline, false);
        await collector.until(() => uuids.every((u) => received(collector).has(u)), 10_000);
      } finally {
        await setOffline(page, expect.offline, false).catch(() => {});
      }
    });
  });
}

/**
 * Waits until the collector has every event of `x` and `y` (two uuid lists); on timeout
 * the error says how many of each never arrived and what was sent how.
 */
async function allArrive(collector, x, y = [], ms = 15_000) {
  await collector.until(() => [...x, ...y].every((u) => received(collector).has(u)), ms).catch((e) => {
    const d = received(collector);
    throw new Error(`${e.message}: ${x.filter((u) => !d.has(u)).length} of x and ${y.filter((u) => !d.has(u)).length} of y never arrived; requests ${requestLog(collector, x, y)}`);
  });
}

/** The collector's requests as `status:type:<events of x>x+<events of y>y`, for failure messages. */
function requestLog(collector, x, y) {
  return collector.requests
    .map((r) => {
      const ids = r.json ? r.json.visitors.map((v) => v.snapshots[0].events[0].uuid) : [];
      const nx = ids.filter((u) => x.includes(u)).length;
      const ny = ids.filter((u) => y.includes(u)).length;
      return nx + ny ? `${r.status}:${/^text\/plain/.test(r.headers['content-type']) ? 'beacon' : 'fetch'}:${nx}x+${ny}y` : '';
    })
    .filter(Boolean)
    .join(' ');
}

/** Closes every tab but `keep`, and makes `keep` current. */
async function closeOtherTabs(page, keep) {
  for (const handle of await page.cmd('GET', '/window/handles')) {
    if (handle === keep) continue;
    await page.switchTo(handle);
    await page.cmd('DELETE', '/window');
  }
  await page.switchTo(keep);
}

/** Takes the page (or the whole browser) offline or back online, the way `how` says. */
async function setOffline(page, how, offline) {
  if (how === 'devtools') {
    await page.cdp('Network.enable');
    await page.cdp('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  } else if (how === 'browser') {
    await page.cmd('POST', '/moz/context', { context: 'chrome' });
    try {
      await page.cmd('POST', '/execute/sync', { script: 'Services.io.manageOfflineStatus = false; Services.io.offline = arguments[0];', args: [offline] });
    } finally {
      await page.cmd('POST', '/moz/context', { context: 'content' });
    }
  } else {
    await page.run((offline) => {
      Object.defineProperty(navigator, 'onLine', { get: () => !offline, configurable: true });
      window.dispatchEvent(new Event(offline ? 'offline' : 'online'));
    }, offline);
  }
}
