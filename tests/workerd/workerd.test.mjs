// Runs the packed `batch-event-processor` inside real workerd through Miniflare 4.
//
// worker.mjs (`import { BatchEventProcessor } from 'batch-event-processor'`) is bundled
// with esbuild using the `workerd` / `worker` export conditions, so it gets the package's
// workerd.js entry exactly as wrangler would; the `.wasm` import is kept as an import of a
// copied file, which Miniflare loads as a `CompiledWasm` module. Every batch is POSTed to
// a real HTTP collector on 127.0.0.1 (tests/support/collector.mjs).
//
// Run: node --test tests/workerd/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Miniflare, Log, LogLevel } from 'miniflare';
import { startCollector } from '../support/collector.mjs';
import { bundleWorker as bundle, ensurePackageInstalled, postJson, root } from '../support/workerd.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(root, 'target/workerd-test');

let collector;
let mf;
let coldStart;
/** Everything workerd logged ({ timestamp, level, message }). */
const runtimeLogs = [];

async function bundleWorker() {
  const result = await bundle(path.join(here, 'worker.mjs'), outdir);
  const inputs = Object.keys(result.metafile.inputs);
  // The workerd entry must be the one bundled (not browser.js / node.js).
  assert.ok(
    inputs.some((i) => i.endsWith('batch-event-processor/workerd.js')),
    `workerd.js not bundled; inputs: ${inputs.join(', ')}`,
  );
  const outputs = Object.keys(result.metafile.outputs).map((o) => path.basename(o));
  assert.deepEqual(outputs.sort(), ['bep_bg.wasm', 'worker.mjs']);
  return path.join(outdir, 'worker.mjs');
}

const post = (route, body) => postJson(mf, route, body);

// Contexts that differ in exactly one field from the first: none may share a batch.
const BASE_CONTEXT = {
  accountId: '12345',
  projectId: '67890',
  revision: '42',
  clientName: 'node-sdk',
  clientVersion: '6.0.0',
  anonymizeIP: true,
  botFiltering: false,
};
const CONTEXTS = [
  BASE_CONTEXT,
  { ...BASE_CONTEXT, accountId: '12346' },
  { ...BASE_CONTEXT, projectId: '67891' },
  { ...BASE_CONTEXT, revision: '43' },
  { ...BASE_CONTEXT, clientName: 'javascript-sdk' },
  { ...BASE_CONTEXT, clientVersion: '5.3.4' },
  { ...BASE_CONTEXT, anonymizeIP: false },
  { ...BASE_CONTEXT, botFiltering: true },
  { ...BASE_CONTEXT, region: 'EU' },
];

/** Every (batch, visitor, event uuid) the collector received, for the given uuids. */
function receivedEvents(wanted) {
  const out = [];
  collector.requests.forEach((r, batch) => {
    if (!r.json?.visitors) return;
    for (const v of r.json.visitors)
      for (const s of v.snapshots)
        for (const e of s.events) if (wanted.has(e.uuid)) out.push({ batch, request: r, visitorId: v.visitor_id, uuid: e.uuid });
  });
  return out;
}

/**
 * Sends `requests` concurrent /events requests of `perRequest` events each (alternating
 * between two contexts within a request), waits until the collector has every uuid, and
 * checks none is lost, duplicated, mis-attributed or batched with an event of another
 * context. With `flushEvery > 1` only every n-th request flushes (mode=shared: the queue
 * of the module-scope processor then spans requests), and one /flush request follows.
 */
async function runLoad(mode, { requests = 50, perRequest = 4, batchSize = 10, flushEvery = 1 } = {}) {
  const runId = `${mode}-${flushEvery}-${Date.now().toString(36)}`;
  const expected = new Map(); // uuid -> { ctx, userId }
  const bodies = [];
  for (let r = 0; r < requests; r++) {
    const ctxs = [r % CONTEXTS.length, (r + 1) % CONTEXTS.length];
    const userId = `${runId}-visitor-${r}`;
    const uuids = Array.from({ length: perRequest }, (_, i) => `${runId}-r${r}-e${i}`);
    uuids.forEach((u, i) => expected.set(u, { ctx: ctxs[i % ctxs.length], userId }));
    bodies.push({ uuids, contexts: ctxs.map((c) => CONTEXTS[c]), userId, batchSize, flush: r % flushEvery === 0 });
  }
  const statsBefore = mode === 'shared' ? (await post('/stats?mode=shared', {})).json.stats : null;

  const started = performance.now();
  const responses = await Promise.all(bodies.map((b) => post(`/events?mode=${mode}`, b)));
  const answered = performance.now();
  for (const res of responses) {
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.accepted, Array(perRequest).fill(true), res.text);
  }
  if (flushEvery > 1) {
    const res = await post(`/flush?mode=${mode}`, {});
    assert.equal(res.status, 200, res.text);
  }

  const wanted = new Set(expected.keys());
  const arrived = () => new Set(receivedEvents(wanted).map((e) => e.uuid)).size;
  await collector.until(() => arrived() === wanted.size, 15000).catch((err) => {
    const got = new Set(receivedEvents(wanted).map((e) => e.uuid));
    const missing = [...wanted].filter((u) => !got.has(u));
    throw new Error(`${err.message}: ${missing.length} of ${wanted.size} uuids missing, e.g. ${missing.slice(0, 5).join(', ')}`);
  });
  const delivered = performance.now();

  const events = receivedEvents(wanted);
  // None lost (checked above), none duplicated.
  const seen = new Map();
  for (const e of events) seen.set(e.uuid, (seen.get(e.uuid) || 0) + 1);
  const dups = [...seen].filter(([, n]) => n > 1);
  assert.deepEqual(dups, [], 'uuids delivered more than once');
  assert.equal(events.length, wanted.size);

  // Each event sits under its own visitor; each batch holds one context only, and its
  // header is that context's.
  const batches = new Map();
  for (const e of events) {
    const exp = expected.get(e.uuid);
    assert.equal(e.visitorId, exp.userId, `visitor of ${e.uuid}`);
    if (!batches.has(e.batch)) batches.set(e.batch, { request: e.request, ctxs: new Set(), uuids: [] });
    const b = batches.get(e.batch);
    b.ctxs.add(exp.ctx);
    b.uuids.push(e.uuid);
  }
  for (const [i, b] of batches) {
    assert.equal(b.ctxs.size, 1, `batch ${i} mixes contexts ${[...b.ctxs].join(', ')}: ${b.uuids.join(', ')}`);
    // Every event of the batch belongs to this run (no foreign events leaked in).
    const all = b.request.json.visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events.map((e) => e.uuid)));
    assert.deepEqual(all.sort(), b.uuids.sort(), `batch ${i} holds events of another run`);
    assert.ok(all.length <= batchSize, `batch ${i} has ${all.length} events > batchSize ${batchSize}`);
    const c = CONTEXTS[[...b.ctxs][0]];
    const p = b.request.json;
    assert.equal(p.account_id, c.accountId);
    assert.equal(p.project_id, c.projectId);
    assert.equal(p.revision, c.revision);
    assert.equal(p.client_name, c.clientName);
    assert.equal(p.client_version, c.clientVersion);
    assert.equal(p.anonymize_ip, c.anonymizeIP);
    assert.equal(p.enrich_decisions, true);
    assert.equal(b.request.method, 'POST');
    assert.equal(b.request.url, '/v1/events');
    assert.match(b.request.headers['content-type'], /application\/json/);
  }
  if (mode === 'shared') {
    // The module-scope processor's counters agree with what the collector saw.
    const zero = { dispatched: 0, batches: 0, failed: 0, dropped: 0, retried: 0 };
    const before = statsBefore ?? zero;
    let stats;
    const deadline = Date.now() + 5000;
    do {
      stats = (await post('/stats?mode=shared', {})).json.stats;
      if (stats.dispatched - before.dispatched === wanted.size && stats.inFlight === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    } while (Date.now() < deadline);
    assert.equal(stats.dispatched - before.dispatched, wanted.size, JSON.stringify({ before, stats }));
    assert.equal(stats.batches - before.batches, batches.size, JSON.stringify({ before, stats }));
    assert.equal(stats.queued, 0, JSON.stringify(stats));
    assert.equal(stats.inFlight, 0, JSON.stringify(stats));
    assert.equal(stats.failed - before.failed, 0, JSON.stringify(stats));
    assert.equal(stats.dropped - before.dropped, 0, JSON.stringify(stats));
  }
  console.log(
    `workerd ${mode}${flushEvery > 1 ? ` (flush every ${flushEvery}th request)` : ''}: ${requests} requests x ${perRequest} events -> ${wanted.size} events in ${batches.size} batches; ` +
      `responses after ${(answered - started).toFixed(0)} ms, all delivered after ${(delivered - started).toFixed(0)} ms`,
  );
  const visitorsPerBatch = [...batches.values()].map((b) => new Set(b.uuids.map((u) => expected.get(u).userId)).size);
  return { batches: batches.size, events: wanted.size, crossRequestBatches: visitorsPerBatch.filter((n) => n > 1).length };
}

before(async () => {
  ensurePackageInstalled();
  const scriptPath = await bundleWorker();
  collector = await startCollector();

  const t0 = performance.now();
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
    bindings: { ENDPOINT: collector.url },
    log: new Log(LogLevel.WARN),
    handleStructuredLogs: (entry) => {
      runtimeLogs.push(entry); // must return undefined (Miniflare validates it)
    },
  });
  await mf.ready;
  const tReady = performance.now();
  const first = await post('/events?mode=request', {
    uuids: ['cold-0', 'cold-1', 'cold-2'],
    contexts: [BASE_CONTEXT],
    userId: 'cold-visitor',
  });
  const tFirst = performance.now();
  coldStart = { first, total: tFirst - t0, ready: tReady - t0, afterReady: tFirst - tReady };
  console.log(
    `workerd cold start: ${coldStart.total.toFixed(0)} ms from new Miniflare() to the first processed-event response ` +
      `(ready after ${coldStart.ready.toFixed(0)} ms, first request ${coldStart.afterReady.toFixed(0)} ms after ready)`,
  );
});

after(async () => {
  await mf?.dispose();
  await collector?.close();
});

test('first request in a cold workerd processes events and the collector receives them', { timeout: 15000 }, async () => {
  assert.equal(coldStart.first.status, 200, coldStart.first.text);
  assert.deepEqual(coldStart.first.json.accepted, [true, true, true]);
  await collector.until(() => ['cold-0', 'cold-1', 'cold-2'].every((u) => collector.uuids().includes(u)), 10000);
  const req = collector.requests.find((r) => r.json?.visitors?.[0]?.visitor_id === 'cold-visitor');
  const events = req.json.visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events));
  // impression, conversion, impression (worker.mjs alternates them)
  assert.deepEqual(events.map((e) => e.key), ['campaign_activated', 'purchase', 'campaign_activated']);
  const conversion = events[1];
  assert.equal(conversion.revenue, 4200);
  assert.equal(conversion.value, 42.5);
  assert.deepEqual(conversion.tags, { revenue: 4200, value: 42.5, sku: 'abc' });
  const decision = req.json.visitors[0].snapshots[0].decisions[0];
  assert.equal(decision.campaign_id, '1001');
  assert.equal(decision.experiment_id, '2001');
  assert.equal(decision.variation_id, '3001');
  assert.equal(decision.metadata.flag_key, 'checkout_flow');
});

test('50 concurrent requests, one processor per request: every event arrives once, contexts never mixed', { timeout: 20000 }, async () => {
  const { events } = await runLoad('request', { requests: 50, perRequest: 4 });
  assert.equal(events, 200);
});

test('50 concurrent requests, one processor at module scope flushed per request: every event arrives once, contexts never mixed', { timeout: 20000 }, async () => {
  const { events } = await runLoad('shared', { requests: 50, perRequest: 4, batchSize: 10 });
  assert.equal(events, 200);
});

test('50 concurrent requests, module-scope processor flushed by every 5th request: batches span requests, none lost', { timeout: 20000 }, async () => {
  const { events, crossRequestBatches } = await runLoad('shared', { requests: 50, perRequest: 4, batchSize: 10, flushEvery: 5 });
  assert.equal(events, 200);
  assert.ok(crossRequestBatches > 0, 'expected some batches to hold events of several requests');
});

test('flushInterval timer sends the queue inside a request kept alive with ctx.waitUntil', { timeout: 10000 }, async () => {
  const uuids = ['timer-req-0', 'timer-req-1'];
  const res = await post('/timer?mode=request', {
    uuids,
    contexts: [BASE_CONTEXT],
    userId: 'timer-visitor',
    interval: 150,
    keepAliveMs: 1000,
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.stats.queued, 2, res.text);
  await collector.until(() => uuids.every((u) => collector.uuids().includes(u)), 3000);
});

test(
  'module-scope processor without waitUntil: no timer points at a finished request; the next flush sends everything',
  { timeout: 10000 },
  async () => {
    // Request 1 ends at once; request 2 stays alive well past the interval. Neither
    // arms a timer (it would belong to a request that may have ended).
    const first = await post('/timer?mode=shared', {
      uuids: ['timer-shared-0'],
      contexts: [BASE_CONTEXT],
      userId: 'timer-shared-visitor',
      interval: 150,
    });
    assert.equal(first.status, 200, first.text);
    const second = await post('/timer?mode=shared', {
      uuids: ['timer-shared-1'],
      contexts: [BASE_CONTEXT],
      userId: 'timer-shared-visitor',
      interval: 150,
      keepAliveMs: 600,
    });
    assert.equal(second.status, 200, second.text);
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(!collector.uuids().includes('timer-shared-0'), 'nothing is sent from a timer');
    // The next request's flush sends both, under its own waitUntil.
    const flushed = await post('/flush?which=timer', {});
    assert.equal(flushed.status, 200, flushed.text);
    await collector.until(() => ['timer-shared-0', 'timer-shared-1'].every((u) => collector.uuids().includes(u)), 3000);
  },
);

test('uuid and timestamp omitted inside workerd: filled with a UUID v4 and Date.now()', { timeout: 10000 }, async () => {
  const before = Date.now();
  const res = await post('/raw', {
    events: [{ type: 'conversion', context: BASE_CONTEXT, user: { id: 'autofill-visitor' }, event: { id: '4001', key: 'purchase' } }],
  });
  assert.equal(res.status, 200, res.text);
  const find = () => collector.requests.find((r) => r.json?.visitors?.[0]?.visitor_id === 'autofill-visitor');
  await collector.until(() => find() !== undefined, 5000);
  const e = find().json.visitors[0].snapshots[0].events[0];
  assert.match(e.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(e.timestamp >= before - 5000 && e.timestamp <= Date.now() + 5000, `timestamp ${e.timestamp}`);
});

test('invalid events inside workerd throw a TypeError naming the field', { timeout: 15000 }, async () => {
  const good = {
    type: 'conversion',
    uuid: 'bad-input-good',
    timestamp: 1700000000000,
    context: BASE_CONTEXT,
    user: { id: 'visitor-bad' },
    event: { id: '4001', key: 'purchase' },
  };
  const cases = [
    [{ ...good, user: 'visitor-1' }, 'user'],
    [{ ...good, context: undefined }, 'context'],
    [{ ...good, context: { ...BASE_CONTEXT, accountId: undefined } }, 'context.accountId'],
    [{ ...good, context: { ...BASE_CONTEXT, accountId: 12345 } }, 'context.accountId'],
    [{ ...good, user: { id: 7 } }, 'user.id'],
    [{ ...good, type: 'click' }, 'type'],
    [{ ...good, timestamp: 'yesterday' }, 'timestamp'],
    [{ ...good, event: { id: '4001' } }, 'event.key'],
    [{ ...good, event: undefined }, 'event'],
    [{ ...good, revenue: 'lots' }, 'revenue'],
    [{ ...good, user: { id: 'v', attributes: [{ entityId: '1', key: 'k', value: { nested: true } }] } }, 'user.attributes[0].value'],
  ];
  const failures = [];
  for (const [event, field] of cases) {
    const res = await post('/raw', { events: [event] });
    if (res.status !== 400 || !res.json?.error) {
      failures.push(`${field}: expected 400 with an error, got ${res.status} ${res.text}`);
      continue;
    }
    const { name, message, isTypeError } = res.json.error;
    if (name !== 'TypeError' || !isTypeError) failures.push(`${field}: expected a TypeError, got ${name}: ${message}`);
    if (!message.includes(field)) failures.push(`${field}: message does not name the field: ${message}`);
  }
  assert.deepEqual(failures, []);
  // The valid event alone is accepted (the cases above fail because of their one change).
  const ok = await post('/raw', { events: [good] });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json.accepted, [true]);
  await collector.until(() => collector.uuids().includes('bad-input-good'), 10000);
});

test('invalid options inside workerd throw a TypeError naming the option and the rule', { timeout: 15000 }, async () => {
  const res = await post('/options', { options: { batchSize: 0 } });
  assert.equal(res.status, 400, res.text);
  assert.equal(res.json.error.name, 'TypeError');
  assert.equal(res.json.error.isTypeError, true);
  assert.match(res.json.error.message, /batchSize must be an integer >= 1, got 0/);
  for (const [options, field] of [
    [{ flushInterval: -5 }, 'flushInterval'],
    [{ maxQueueSize: 1.5 }, 'maxQueueSize'],
    [{ endpoint: 'not a url' }, 'endpoint'],
  ]) {
    const r = await post('/options', { options });
    assert.equal(r.status, 400, `${field}: ${r.text}`);
    assert.equal(r.json.error.name, 'TypeError', `${field}: ${r.text}`);
    assert.ok(r.json.error.message.includes(field), `${field}: ${r.json.error.message}`);
  }
});

test('workerd logged no warnings or errors (e.g. cross-request I/O, unhandled rejections)', async () => {
  for (const l of runtimeLogs) console.log(`workerd log [${l.level}] ${l.message}`);
  const bad = runtimeLogs.filter((l) => !['info', 'debug', 'log'].includes(l.level));
  assert.deepEqual(bad, []);
});
