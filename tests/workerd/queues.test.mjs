// Cloudflare Queues fan-in in real workerd (Miniflare 4): many requests each batch a few
// events into a Queue (queueDispatcher); the queue consumer (handleQueueBatch) merges
// them into few full-size POSTs to a collector on 127.0.0.1, acking only what was
// delivered. Messages carry the bytes Rust wrote (`{ url, bytes }`, contentType 'v8'):
// what reaches the collector is byte for byte what the default dispatcher POSTs, the
// producer decodes no body, and `{ url, body }` JSON messages of earlier versions are
// still delivered. Run: node --test tests/workerd/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { startCollector } from '../support/collector.mjs';
import { bundleWorker, ensurePackageInstalled, root } from '../support/workerd.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(root, 'target/workerd-queues');

let collector;
let failing = false;

async function startWorker({ maxRetries = 20 } = {}) {
  await bundleWorker(path.join(here, 'queues-worker.mjs'), outdir);
  return new Miniflare({
    modules: true,
    modulesRoot: outdir,
    scriptPath: path.join(outdir, 'queues-worker.mjs'),
    modulesRules: [
      { type: 'ESModule', include: ['**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2025-01-01',
    cf: false,
    bindings: { ENDPOINT: collector.url },
    queueProducers: { EVENTS: { queueName: 'events' } },
    queueConsumers: {
      events: { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries, retryDelay: 0, deadLetterQueue: 'events-dlq' },
      'events-dlq': { maxBatchSize: 100, maxBatchTimeout: 1 },
    },
  });
}

let seq = 0;
function event(runId) {
  seq++;
  return {
    type: seq % 3 ? 'impression' : 'conversion',
    uuid: `${runId}-${seq}`,
    timestamp: 1700000000000 + seq,
    context: { accountId: '12345', projectId: '678', revision: '9', clientName: 'worker', clientVersion: '1', anonymizeIP: true, botFiltering: true },
    user: { id: `visitor-${seq % 50}`, attributes: [{ entityId: '1', key: 'plan', value: 'pro' }] },
    layer: { id: '1' }, experiment: { id: '2', key: 'exp' }, variation: { id: '3', key: 'on' },
    ruleKey: 'exp', flagKey: 'flag', ruleType: 'experiment', enabled: true,
    event: { id: '9', key: 'purchase' }, revenue: 100, tags: { revenue: 100 },
  };
}

async function sendRequests(mf, runId, requests, perRequest) {
  const uuids = [];
  for (let wave = 0; wave < requests; wave += 25) {
    await Promise.all(
      Array.from({ length: Math.min(25, requests - wave) }, async () => {
        const events = Array.from({ length: perRequest }, () => event(runId));
        uuids.push(...events.map((e) => e.uuid));
        const res = await mf.dispatchFetch('http://localhost/', { method: 'POST', body: JSON.stringify({ events }) });
        assert.equal(res.status, 200, await res.text());
      }),
    );
  }
  return uuids;
}

before(async () => {
  ensurePackageInstalled();
  collector = await startCollector({ status: () => (failing ? 500 : 200) });
});

after(async () => {
  await collector?.close();
});

test('1 000 events over 200 requests reach the collector through the Queue in far fewer POSTs', async () => {
  const mf = await startWorker();
  try {
    const from = collector.requests.length;
    const uuids = await sendRequests(mf, 'fanin', 200, 5);
    await collector.until(() => {
      const got = new Set(collector.uuids());
      return uuids.every((u) => got.has(u));
    }, 30_000);
    const posts = collector.requests.length - from;
    console.log(`queues fan-in: ${uuids.length} events from 200 requests arrived in ${posts} POSTs (${(200 / posts).toFixed(1)} requests per POST)`);
    assert.ok(posts * 5 <= 200, `${posts} POSTs for 200 requests`);
    for (const r of collector.requests.slice(from)) {
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.json.project_id, '678');
    }
  } finally {
    await mf.dispose();
  }
});

test('a collector returning 500 for a while causes redelivery, not loss', async () => {
  const mf = await startWorker();
  try {
    failing = true;
    const from = collector.requests.length;
    const uuids = await sendRequests(mf, 'redeliver', 40, 5);
    await collector.until(() => collector.requests.slice(from).some((r) => r.status === 500), 15_000);
    failing = false;
    await collector.until(() => {
      const got = new Set(collector.uuids());
      return uuids.every((u) => got.has(u));
    }, 30_000);
    const failed = collector.requests.slice(from).filter((r) => r.status === 500).length;
    console.log(`queues redelivery: ${failed} POSTs answered 500, then all ${uuids.length} events arrived`);
    assert.ok(failed > 0);
  } finally {
    failing = false;
    await mf.dispose();
  }
});

/** Events of one context with non-ASCII, escaped and JSON-looking user ids, attributes and tags. */
function unicodeEvents(runId, n, noteBytes = 0) {
  return Array.from({ length: n }, (_, i) => ({
    ...event(runId),
    type: 'conversion',
    user: {
      id: `visiteur-${i}-Zürich-東京-🎉-"q"\\-{"visitors":[`,
      attributes: [
        { entityId: '1', key: 'ville', value: 'Genève ✓ – naïve' },
        { entityId: '2', key: 'emoji "key"', value: '👩‍👩‍👧‍👦 🇨🇭 \u2028 ]},{' },
      ],
    },
    tags: { revenue: 100, note: 'ü'.repeat(noteBytes / 2) },
  }));
}

const post = (mf, route, body) =>
  mf.dispatchFetch(`http://localhost${route}`, { method: 'POST', body: JSON.stringify(body) }).then(async (res) => {
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text);
  });

const uuidsOf = (r) => r.json.visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events.map((e) => e.uuid)));

/** The collector requests that came through `via` (direct or queue) and hold any of `uuids`. */
function received(from, via, uuids) {
  const want = new Set(uuids);
  return collector.requests
    .slice(from)
    .filter((r) => r.url.endsWith(`via=${via}`) && r.status === 200 && uuidsOf(r).some((u) => want.has(u)));
}

/**
 * Sends `events` once with the default dispatcher (POST ?via=direct) and once through
 * the Queue; waits until every event came through the Queue. Answers the direct POSTs,
 * the queued POSTs and what the producer reported.
 */
async function roundTrip(mf, events) {
  const from = collector.requests.length;
  const uuids = events.map((e) => e.uuid);
  const direct = await post(mf, '/direct', { events });
  assert.deepEqual(direct.closed, { dispatched: events.length, failed: 0, pending: 0 });
  const produced = await post(mf, '/queue', { events });
  assert.deepEqual(produced.closed, { dispatched: events.length, failed: 0, pending: 0 });
  await collector.until(() => {
    const got = new Set(received(from, 'queue', uuids).flatMap(uuidsOf));
    return uuids.every((u) => got.has(u));
  }, 30_000);
  return { direct: received(from, 'direct', uuids), queued: received(from, 'queue', uuids), produced };
}

test('a batch reaches the collector through the Queue byte for byte as the default dispatcher POSTs it, with no body decoded', async () => {
  const mf = await startWorker();
  try {
    const events = unicodeEvents('same', 8);
    const { direct, queued, produced } = await roundTrip(mf, events);
    assert.equal(produced.messages.length, 1);
    assert.equal(produced.messages[0].contentType, 'v8');
    assert.equal(produced.bodyDecodes, 0, 'the producer decoded a body into a string');
    assert.equal(direct.length, 1);
    assert.equal(queued.length, 1);
    assert.ok(queued[0].raw.equals(direct[0].raw), 'the queued POST differs from the direct one');
    assert.equal(queued[0].headers['content-type'], 'application/json');
    // Non-ASCII, quotes, backslashes and JSON-looking strings came through intact.
    assert.deepEqual(
      queued[0].json.visitors.map((v) => v.visitor_id),
      events.map((e) => e.user.id),
    );
    assert.deepEqual(queued[0].json.visitors[0].attributes.slice(0, 2).map((a) => a.value), events[0].user.attributes.map((a) => a.value));
    const { bodyDecodes } = await (await mf.dispatchFetch('http://localhost/dlq')).json();
    assert.equal(bodyDecodes, 0, 'the consumer decoded a body into a string');
    // The spy sees a decode when there is one: a listener reading logEvent.body.
    const read = await post(mf, '/queue', { events: unicodeEvents('read', 2), readBody: true });
    assert.equal(read.bodyDecodes, 1);
  } finally {
    await mf.dispose();
  }
});

test('a batch over 120 KB is split into several messages on its bytes and merged back into one POST, every event once', async () => {
  const mf = await startWorker();
  try {
    // 10 events of ~24 KB: ~245 KB, three Queue messages of at most 120 KB.
    const events = unicodeEvents('big', 10, 24_000);
    const { direct, queued, produced } = await roundTrip(mf, events);
    const sizes = produced.messages.map((m) => m.bytes);
    console.log(`queues split: a batch of ${direct[0].raw.length} bytes went as ${sizes.length} messages (${sizes.join(', ')} bytes) in ${produced.sendBatches} sendBatch calls, and arrived in ${queued.length} POST`);
    assert.ok(sizes.length >= 2, `${sizes.length} message(s)`);
    assert.ok(sizes.every((n) => n <= 120_000), sizes.join(', '));
    assert.ok(produced.messages.every((m) => m.contentType === 'v8'));
    assert.equal(produced.bodyDecodes, 0, 'the producer decoded a body into a string');
    assert.equal(direct.length, 1);
    assert.equal(queued.length, 1, `${queued.length} POSTs from the queue`);
    const uuids = uuidsOf(queued[0]);
    assert.equal(uuids.length, events.length);
    assert.deepEqual(new Set(uuids), new Set(events.map((e) => e.uuid)));
    // Miniflare delivers in order, so the merge rebuilds the very bytes of the batch.
    assert.ok(queued[0].raw.equals(direct[0].raw), 'the merged POST differs from the direct one');
    const { bodyDecodes } = await (await mf.dispatchFetch('http://localhost/dlq')).json();
    assert.equal(bodyDecodes, 0, 'the consumer decoded a body into a string');
  } finally {
    await mf.dispose();
  }
});

test('{ url, body } JSON messages of earlier versions are still delivered, merged with new ones', async () => {
  const mf = await startWorker();
  try {
    const from = collector.requests.length;
    const a = unicodeEvents('legacy-a', 3);
    const b = unicodeEvents('legacy-b', 2);
    await post(mf, '/direct', { events: a });
    await post(mf, '/direct', { events: b });
    const [textA] = received(from, 'direct', a.map((e) => e.uuid)).map((r) => r.body);
    const [textB] = received(from, 'direct', b.map((e) => e.uuid)).map((r) => r.body);
    // Alone: delivered byte for byte.
    await post(mf, '/legacy', { legacy: [textA], current: [] });
    await collector.until(() => received(from, 'queue', [a[0].uuid]).length === 1, 30_000);
    assert.equal(received(from, 'queue', [a[0].uuid])[0].body, textA);
    // In one Queues batch with a new `{ url, bytes }` message of the same context: one POST.
    await post(mf, '/legacy', { legacy: [textB], current: [textA] });
    await collector.until(() => received(from, 'queue', [b[0].uuid]).length === 1, 30_000);
    const [merged] = received(from, 'queue', [b[0].uuid]);
    const header = textA.slice(0, textA.indexOf('"visitors":[') + 12);
    assert.equal(merged.body, `${header}${textB.slice(header.length, -2)},${textA.slice(header.length, -2)}]}`);
  } finally {
    await mf.dispose();
  }
});

test('a message that is not a batch goes to the dead-letter queue', async () => {
  const mf = await startWorker({ maxRetries: 1 });
  try {
    await post(mf, '/bad', {});
    let dead = [];
    const deadline = Date.now() + 30_000;
    while (dead.length < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      dead = (await (await mf.dispatchFetch('http://localhost/dlq')).json()).deadLetters;
    }
    assert.deepEqual(dead.sort(), ['bytes,url', 'hello', 'plain text']);
  } finally {
    await mf.dispose();
  }
});
