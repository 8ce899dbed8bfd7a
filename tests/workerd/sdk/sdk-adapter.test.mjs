// The Optimizely JavaScript SDK 6 with `createForwardingEventProcessor(p.asEventDispatcher())`
// in front of the packed batch-event-processor, inside real workerd through Miniflare 4.
//
// worker.mjs is bundled with esbuild as wrangler would: `platform: 'neutral'`, the
// `workerd` / `worker` conditions (so the package's workerd.js entry is bundled and its
// `.wasm` import is kept as a copied file, loaded as a `CompiledWasm` module), and the
// SDK imported from `@optimizely/optimizely-sdk/universal`. That build needs no
// `nodejs_compat`; the SDK's default entry does not work here (with the `browser`
// condition it throws "window is not defined" in createInstance; its node build needs
// node:stream and fails at startup with "Dynamic require of "stream" is not supported").
// Every batch is POSTed to a real HTTP collector on 127.0.0.1.
//
// Run: node --test tests/workerd/sdk/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Miniflare, Log, LogLevel } from 'miniflare';
import { startCollector } from '../../support/collector.mjs';
import { bundleWorker as bundle, ensurePackageInstalled, postJson, root } from '../../support/workerd.mjs';
import { flowUsers, IDS, EVENT_KEY } from '../../support/datafile.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(root, 'target/workerd-sdk-test');

let collector; // our processor's endpoint
let reference; // the SDK's own batch processor's endpoint
let mf;
const runtimeLogs = [];

async function bundleWorker() {
  // The SDK's dependencies (uuid, murmurhash) have no `exports` for the neutral platform.
  const result = await bundle(path.join(here, 'worker.mjs'), outdir, { mainFields: ['module', 'main'] });
  const inputs = Object.keys(result.metafile.inputs);
  for (const want of ['batch-event-processor/workerd.js', '@optimizely/optimizely-sdk/dist/index.universal.es.min.js']) {
    assert.ok(inputs.some((i) => i.endsWith(want)), `${want} not bundled; inputs: ${inputs.join(', ')}`);
  }
  for (const unwanted of ['batch-event-processor/browser.js', 'batch-event-processor/node.js', 'index.node.', 'index.browser.']) {
    assert.ok(!inputs.some((i) => i.includes(unwanted)), `${unwanted} bundled`);
  }
  const outputs = Object.keys(result.metafile.outputs).map((o) => path.basename(o));
  assert.deepEqual(outputs.sort(), ['bep_bg.wasm', 'worker.mjs']);
  return path.join(outdir, 'worker.mjs');
}

const post = (route, body) => postJson(mf, route, body);

/** Every event a collector received: uuid, its visitor and batch header as JSON text, and its request. */
function received(c) {
  return c.requests.flatMap((request, batch) =>
    (request.json?.visitors ?? []).map((visitor) => {
      const { visitors, ...header } = request.json;
      return { batch, request, uuid: visitor.snapshots[0].events[0].uuid, visitor, header: JSON.stringify(header) };
    }),
  );
}

/** Waits until the collector holds every uuid in `uuids`; returns those events. */
async function arrived(c, uuids, ms = 10000) {
  const wanted = new Set(uuids);
  const got = () => received(c).filter((e) => wanted.has(e.uuid));
  await c.until(() => new Set(got().map((e) => e.uuid)).size === wanted.size, ms).catch((err) => {
    const have = new Set(got().map((e) => e.uuid));
    const missing = [...wanted].filter((u) => !have.has(u));
    throw new Error(`${err.message}: ${missing.length} of ${wanted.size} events missing, e.g. ${missing.slice(0, 3).join(', ')}`);
  });
  return got();
}

/** Checks one /run answer and what the collector received for it; returns the events. */
async function checkRun(res, { users, prefix }) {
  assert.equal(res.status, 200, res.text);
  const { produced, forwarded, results, sdkRequests } = res.json;
  const expected = flowUsers(users, prefix).reduce((n, u) => n + 1 + u.tracks.length, 0);
  assert.equal(produced, expected);
  assert.equal(forwarded.length, produced, 'the SDK forwarded one LogEvent per event');
  assert.deepEqual(results, Array(produced).fill({ value: { statusCode: 200 } }), 'every dispatchEvent resolved { statusCode: 200 }');
  assert.equal(sdkRequests, 0, 'the SDK made no HTTP requests of its own');
  const uuids = forwarded.map((f) => f.uuid);
  assert.equal(new Set(uuids).size, uuids.length);
  const events = await arrived(collector, uuids);
  assert.equal(events.length, uuids.length, 'every event delivered exactly once');
  const byUuid = new Map(forwarded.map((f) => [f.uuid, f]));
  for (const e of events) {
    const want = byUuid.get(e.uuid);
    assert.equal(JSON.stringify(e.visitor), want.visitor, `visitor of ${e.uuid} differs from what the SDK forwarded`);
    assert.equal(e.header, want.header, `header of ${e.uuid}'s batch`);
    assert.equal(e.request.method, 'POST');
    assert.equal(e.request.url, '/v1/events');
    assert.equal(e.request.status, 200);
    assert.equal(JSON.stringify(e.request.json), e.request.body, 'body is plain JSON.stringify output');
  }
  return events;
}

before(async () => {
  ensurePackageInstalled();
  const scriptPath = await bundleWorker();
  collector = await startCollector();
  reference = await startCollector();
  mf = new Miniflare({
    modules: true,
    scriptPath,
    modulesRoot: outdir,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.mjs', '**/*.js'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2025-09-01',
    cf: false,
    bindings: { ENDPOINT: collector.url, REF_ENDPOINT: reference.url },
    log: new Log(LogLevel.WARN),
    handleStructuredLogs: (entry) => {
      runtimeLogs.push(entry); // must return undefined (Miniflare validates it)
    },
  });
  await mf.ready;
});

after(async () => {
  await mf?.dispose();
  await collector?.close();
  await reference?.close();
});

const FLOW = { prefix: 'wd-request', users: 8 }; // 8 impressions + 11 conversions = 19 events

let requestModeEvents;
let sharedPrefixes = [];

test('one request: SDK client + forwarding processor + our adapter; ctx.waitUntil(p.flush()) delivers every event in batches of 10', { timeout: 20000 }, async () => {
  const res = await post('/run?mode=request', FLOW);
  const events = await checkRun(res, FLOW);
  assert.equal(events.length, 19);
  const sizes = [...new Set(events.map((e) => e.batch))].map((b) => collector.requests[b].json.visitors.length);
  assert.deepEqual(sizes.sort((a, b) => b - a), [10, 9]);
  // Our counters as the request ended: the first batch was handed to fetch at once.
  assert.equal(res.json.stats.dropped, 0);
  assert.equal(res.json.stats.queued + res.json.stats.inFlight + res.json.stats.dispatched, 19);
  requestModeEvents = events;
});

test("inside workerd too, the same events as the SDK's own batch processor (visitors equal up to uuid/timestamp, same headers)", { timeout: 20000 }, async () => {
  assert.ok(requestModeEvents, 'needs the previous test');
  const res = await post('/reference', FLOW);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.produced, 19);
  await reference.until(() => received(reference).length >= 19, 10000);
  const normalize = (visitor) => {
    const v = structuredClone(visitor);
    for (const s of v.snapshots) for (const e of s.events) Object.assign(e, { uuid: '<uuid>', timestamp: 0 });
    return JSON.stringify(v);
  };
  const key = (e) => `${e.visitor.visitor_id}|${e.visitor.snapshots[0].events[0].key}|${e.visitor.snapshots[0].events[0].tags?.category ?? ''}`;
  const index = (events) => new Map(events.map((e) => [key(e), { visitor: normalize(e.visitor), header: e.header }]));
  const ours = index(requestModeEvents);
  const theirs = index(received(reference));
  assert.equal(theirs.size, 19, 'the SDK delivered every event once');
  assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
  for (const [k, want] of theirs) {
    assert.equal(ours.get(k).visitor, want.visitor, `${k}: visitor`);
    assert.equal(ours.get(k).header, want.header, `${k}: header`);
  }
  const header = JSON.parse([...theirs.values()][0].header);
  assert.equal(header.account_id, IDS.accountId);
  assert.equal(header.project_id, IDS.projectId);
  assert.equal(header.revision, IDS.revision);
  assert.equal(header.anonymize_ip, true);
  assert.equal(header.enrich_decisions, true);
  assert.deepEqual(
    reference.requests.map((r) => r.json.visitors.length).sort((a, b) => b - a),
    [10, 9],
    'the SDK cut the same batches',
  );
});

test('20 concurrent requests sharing one module-scope SDK client and processor: every event arrives once, batches <= 10', { timeout: 30000 }, async () => {
  const before = (await post('/stats?mode=shared')).json.stats;
  const flows = Array.from({ length: 20 }, (_, r) => ({ prefix: `wd-shared-${r}`, users: 5 })); // 5 + 7 = 12 events each
  sharedPrefixes = flows.map((f) => f.prefix);
  const answers = await Promise.all(flows.map((f) => post('/run?mode=shared', f)));
  const events = (await Promise.all(answers.map((res, r) => checkRun(res, flows[r])))).flat();
  assert.equal(events.length, 240);
  const batches = new Set(events.map((e) => e.batch));
  for (const b of batches) {
    const n = collector.requests[b].json.visitors.length;
    assert.ok(n >= 1 && n <= 10, `batch of ${n}`);
    // Only events of this test in these batches.
    assert.ok(collector.requests[b].json.visitors.every((v) => v.visitor_id.startsWith('wd-shared-')));
  }
  // The shared processor's counters agree with the collector once everything settled.
  let stats;
  const deadline = Date.now() + 5000;
  do {
    stats = (await post('/stats?mode=shared')).json.stats;
    if (stats.dispatched - (before?.dispatched ?? 0) === 240 && stats.inFlight === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
  assert.equal(stats.dispatched - (before?.dispatched ?? 0), 240, JSON.stringify(stats));
  assert.equal(stats.batches - (before?.batches ?? 0), batches.size, JSON.stringify(stats));
  assert.deepEqual([stats.queued, stats.inFlight, stats.failed, stats.dropped], [0, 0, 0, 0], JSON.stringify(stats));
  const conversions = events.filter((e) => e.visitor.snapshots[0].events[0].key === EVENT_KEY);
  assert.equal(conversions.length, 140);
});

const CROSS_REQUEST = /different request context/;

test(
  'a module-scope processor shared by concurrent requests: every request\'s flush() settles',
  {
    timeout: 15000,
    // flush() in Workers waits only for the batches it sends itself.
  },
  async () => {
    assert.ok(sharedPrefixes.length > 0, 'needs the shared-mode test');
    await new Promise((r) => setTimeout(r, 1000));
    const flushes = (await post('/flushed')).json;
    const pending = sharedPrefixes.filter((prefix) => flushes[prefix] !== 'settled');
    const warnings = runtimeLogs.filter((l) => CROSS_REQUEST.test(l.message)).length;
    assert.deepEqual(pending, [], `${pending.length} of ${sharedPrefixes.length} flushes never settled; ${warnings} cross-request warnings`);
    assert.equal(warnings, 0);
  },
);

test('one processor per request: its flush() settled in the request', async () => {
  const flushes = (await post('/flushed')).json;
  assert.equal(flushes[FLOW.prefix], 'settled');
});

test('workerd logged no warnings or errors (unhandled rejections, cross-request I/O, ...) apart from the todo above', () => {
  // workerd prints some warnings at level "log", one line per entry (stack frames are
  // entries of their own): look at the text of the first lines as well.
  const bad = runtimeLogs.filter(
    (l) =>
      !['info', 'debug', 'log'].includes(l.level) ||
      (!/^\s+at /.test(l.message) && /warning|error|uncaught|unhandled/i.test(l.message) && !CROSS_REQUEST.test(l.message)),
  );
  for (const l of bad) console.log(`workerd log [${l.level}] ${l.message}`);
  assert.deepEqual(bad, []);
});
