// Start-up benchmark (issue 14): what importing the package costs a web app on a slow
// phone profile. The same Vite app is built three ways: without any analytics, with
// this package, and with the Optimizely JS SDK 6's own batch event processor. Each is
// loaded in headless Chromium through the DevTools protocol with the network throttled
// (Network.emulateNetworkConditions: 1.6 Mbit/s down, 750 kbit/s up, 150 ms latency),
// the CPU slowed 4x (Emulation.setCPUThrottlingRate) and the cache off, from a local
// server that gzips its responses; each load in a fresh browser context.
// The app's first line records `performance.now()`, then makes a processor and
// processes one event; `ready` (when the package exports it) marks when the wasm is
// usable. Per app, the median of STARTUP_RUNS loads (default 7) of:
//   first line  - ms from navigation start to the app's first line
//   added       - first line minus the app without analytics
//   before app  - bytes on the wire (gzip + headers) finished before the first line
//   total       - every byte fetched until ready
//   ready       - ms from navigation start until `ready` resolved
// Run: npm run bench:startup   (needs the package built: make build)
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildVite, ensureInstalled, installed, root } from '../browser/support/apps.mjs';
import { serveApp, CHROMIUM, CHROMIUM_ARGS } from '../browser/support/app-server.mjs';

const RUNS = Number(process.env.STARTUP_RUNS || 7);
const EVENT = `{ type: 'impression', context: { accountId: '12345', projectId: '678', revision: '9', clientName: 'javascript-sdk', clientVersion: '6.6.1' },
  user: { id: 'visitor-1', attributes: [] }, layer: { id: '1' }, experiment: { id: '2', key: 'exp' }, variation: { id: '3', key: 'on' },
  ruleKey: 'exp', flagKey: 'flag', ruleType: 'feature-test', enabled: true }`;
// The app's own code: a little work of its own, so the page renders something.
const APP_BODY = `document.getElementById('out').textContent = 'app running at ' + Math.round(window.__appStart) + ' ms';`;

ensureInstalled();
const hasReady = /\bready\b/.test(readFileSync(path.join(installed, 'browser.js'), 'utf8'));

const apps = {
  'no analytics': {
    'main.js': `window.__appStart = performance.now();\n${APP_BODY}\nwindow.__ready = performance.now();\n`,
  },
  'batch-event-processor': {
    'main.js': hasReady
      ? `import { BatchEventProcessor, ready } from 'batch-event-processor';
window.__appStart = performance.now();
${APP_BODY}
const p = new BatchEventProcessor({ dispatcher: async () => ({ statusCode: 200 }) });
p.process(${EVENT});
ready.then(() => { window.__ready = performance.now(); }, () => { window.__ready = -1; });
`
      : `import { BatchEventProcessor } from 'batch-event-processor';
window.__appStart = performance.now();
${APP_BODY}
const p = new BatchEventProcessor({ dispatcher: async () => ({ statusCode: 200 }) });
p.process(${EVENT});
window.__ready = performance.now();
`,
  },
  'SDK 6 processor': {
    'main.js': `import { createBatchEventProcessor } from '@optimizely/optimizely-sdk';
window.__appStart = performance.now();
${APP_BODY}
const p = createBatchEventProcessor({ eventDispatcher: { dispatchEvent: async () => ({ statusCode: 200 }) } });
window.__ready = performance.now();
`,
  },
};

const built = {};
for (const [name, files] of Object.entries(apps)) {
  const dir = path.join(root, 'target', 'startup', name.replace(/\W+/g, '-').toLowerCase());
  built[name] = await buildVite(dir, files, { withPackage: name === 'batch-event-processor' });
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });

/** One throttled load of the app served from `origin`. */
async function load(origin) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 150,
    downloadThroughput: (1.6 * 1024 * 1024) / 8,
    uploadThroughput: (750 * 1024) / 8,
  });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  try {
    await page.goto(origin + '/');
    await page.waitForFunction(() => window.__ready !== undefined, null, { timeout: 60000 });
    return await page.evaluate(() => {
      const start = window.__appStart;
      const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
      const before = entries.filter((e) => e.responseEnd <= start).reduce((n, e) => n + e.transferSize, 0);
      const total = entries.reduce((n, e) => n + e.transferSize, 0);
      return { start, ready: window.__ready, before, total, files: entries.map((e) => [e.name.replace(location.origin, ''), e.transferSize]) };
    });
  } finally {
    await context.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = {};
const servers = {};
try {
  for (const [name, dist] of Object.entries(built)) servers[name] = await serveApp({ '/': dist });
  // Round robin, so that a slow moment of this shared machine hits every app alike.
  const runs = Object.fromEntries(Object.keys(built).map((name) => [name, []]));
  for (const server of Object.values(servers)) await load(server.origin); // warm-up (Chromium itself; each load has a fresh context)
  for (let i = 0; i < RUNS; i++) {
    for (const [name, server] of Object.entries(servers)) runs[name].push(await load(server.origin));
  }
  for (const [name, r] of Object.entries(runs)) {
    results[name] = {
      start: median(r.map((x) => x.start)),
      ready: median(r.map((x) => x.ready)),
      before: median(r.map((x) => x.before)),
      total: median(r.map((x) => x.total)),
      files: r[0].files,
    };
  }
} finally {
  for (const server of Object.values(servers)) await server.close();
  await browser.close();
}

const base = results['no analytics'];
const kb = (n) => (n / 1024).toFixed(1);
console.log(`\nStart-up, Vite app, 1.6 Mbit/s + 150 ms RTT, CPU x4, cache off, gzip; median of ${RUNS} loads`);
console.log('| app | first line (ms) | added (ms) | before app (KB) | added before app (KB) | total (KB) | added total (KB) | ready (ms) |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const [name, r] of Object.entries(results)) {
  console.log(
    `| ${name} | ${r.start.toFixed(0)} | ${(r.start - base.start).toFixed(0)} | ${kb(r.before)} | ${kb(r.before - base.before)} | ${kb(r.total)} | ${kb(r.total - base.total)} | ${r.ready.toFixed(0)} |`,
  );
}
if (process.env.STARTUP_FILES) for (const [name, r] of Object.entries(results)) console.log(name, JSON.stringify(r.files));
