// Cloudflare Queues fan-in in real workerd (Miniflare 4): many requests each batch a few
// events into a Queue (queueDispatcher); the queue consumer (handleQueueBatch) merges
// them into few full-size POSTs to a collector on 127.0.0.1, acking only what was
// delivered. Run: node --test tests/workerd/
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

async function startWorker() {
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
    queueConsumers: { events: { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 20, retryDelay: 0 } },
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

test('a batch over the 128 KB message limit is split into several messages and fully delivered', async () => {
  const mf = await startWorker();
  try {
    const from = collector.requests.length;
    const events = Array.from({ length: 10 }, () => ({ ...event('big'), type: 'conversion', tags: { note: 'ü'.repeat(12_000) } }));
    const res = await mf.dispatchFetch('http://localhost/', { method: 'POST', body: JSON.stringify({ events }) });
    assert.equal(res.status, 200);
    await collector.until(() => {
      const got = new Set(collector.uuids());
      return events.every((e) => got.has(e.uuid));
    }, 30_000);
    const stats = await res.json();
    assert.equal(stats.failed, 0);
    // 10 x ~24 KB = ~240 KB: more than one Queue message, merged again by the consumer.
    const bodies = collector.requests.slice(from).map((r) => Buffer.byteLength(r.body));
    console.log(`queues split: 10 events of ~24 KB arrived in ${bodies.length} POST(s) of ${bodies.join(', ')} bytes`);
  } finally {
    await mf.dispose();
  }
});
