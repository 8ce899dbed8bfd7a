// The Node API subset every server-side JS runtime must pass (Node, Deno, Bun): batching
// with the default fetch dispatcher, the flush timer, retries, close, and the golden
// bytes (byte-identical to the Optimizely JS SDK 6 for the same events). Each case starts
// its own real collector on 127.0.0.1 and closes it, so the runners (node:test,
// Deno.test, bun:test; see *.test.mjs beside this file) need no hooks.
//
// Written against the public API only (DESIGN.md section 3), with runtime-neutral
// modules: node:assert, node:http (the collector), node:module (the SDK reference).
import assert from 'node:assert/strict';
import { startCollector } from '../support/collector.mjs';
import { edgeCaseEvents, makeEvents, groupByContext } from '../support/events.mjs';
import { sdkBatches } from '../support/sdk-reference.mjs';

const CONTEXT = { accountId: '12345', projectId: '678', revision: '9', clientName: 'node-sdk', clientVersion: '6.0.0', anonymizeIP: true, botFiltering: false };
let seq = 0;

function impression() {
  seq += 1;
  return {
    type: 'impression', uuid: `rt-imp-${seq}`, timestamp: 1700000000000 + seq, context: { ...CONTEXT },
    user: { id: `visitor-${seq % 5}`, attributes: [{ entityId: '101', key: 'city', value: 'Zürich' }] },
    layer: { id: '1' }, experiment: { id: '2', key: 'exp' }, variation: { id: '3', key: 'on' },
    ruleKey: 'exp', flagKey: 'flag', ruleType: 'feature-test', enabled: true,
  };
}

function conversion() {
  seq += 1;
  return {
    type: 'conversion', uuid: `rt-conv-${seq}`, timestamp: 1700000000000 + seq, context: { ...CONTEXT },
    user: { id: 'buyer', attributes: [] }, event: { id: '55', key: 'purchase' },
    revenue: 4200, value: 1.5, tags: { revenue: 4200, value: 1.5, category: '東京' },
  };
}

const utf8Length = (s) => new TextEncoder().encode(s).length;
const firstUuid = (json) => json.visitors[0].snapshots[0].events[0].uuid;

/** Asserts `accepted = dispatched + failed + queued + inFlight` for a processor. */
function assertInvariant(p, accepted) {
  const s = p.stats();
  assert.equal(s.dispatched + s.failed + s.queued + s.inFlight, accepted, `invariant broken: ${JSON.stringify(s)}`);
}

/** Runs `fn(collector)` against a fresh collector, always closing it. */
async function withCollector(options, fn) {
  const collector = await startCollector(options);
  try {
    await fn(collector);
  } finally {
    await collector.close();
  }
}

/**
 * The cases, as `[name, async () => {}]` pairs, for the package's exports `pkg`
 * (`{ BatchEventProcessor, ... }` as imported in the runtime under test).
 */
export function runtimeCases({ BatchEventProcessor }) {
  return [
    ['batches of batchSize are POSTed as JSON by the default fetch dispatcher; listeners see each batch once', () =>
      withCollector({}, async (collector) => {
        const p = new BatchEventProcessor({ batchSize: 3, flushInterval: 60_000, endpoint: collector.url });
        const heard = [];
        p.onEventDispatch((logEvent) => heard.push(logEvent.params.visitors.length));
        const events = Array.from({ length: 7 }, (_, i) => (i % 2 ? conversion() : impression()));
        for (const e of events) assert.equal(p.process(e), true);
        await collector.until(() => collector.requests.length === 2, 5000);
        assert.equal(p.stats().queued, 1, 'the partial batch waits for the interval');
        await p.flush();
        const reqs = collector.requests;
        assert.deepEqual(reqs.map((r) => r.json.visitors.length), [3, 3, 1]);
        assert.deepEqual(heard, [3, 3, 1]);
        for (const r of reqs) {
          assert.equal(r.method, 'POST');
          assert.equal(r.url, '/v1/events');
          assert.equal(r.headers['content-type'], 'application/json');
          assert.equal(r.json.account_id, '12345');
        }
        assert.deepEqual(collector.uuids(), events.map((e) => e.uuid));
        const s = p.stats();
        assert.deepEqual(
          [s.queued, s.inFlight, s.dispatched, s.batches, s.retried, s.failed, s.dropped, s.bytesSent],
          [0, 0, 7, 3, 0, 0, 0, reqs.reduce((n, r) => n + utf8Length(r.body), 0)],
        );
        await p.close();
      })],

    ['a partial batch is sent once flushInterval has passed (the runtime\'s own timers)', () =>
      withCollector({}, async (collector) => {
        const p = new BatchEventProcessor({ batchSize: 100, flushInterval: 150, endpoint: collector.url });
        const started = Date.now();
        p.process(impression());
        p.process(conversion());
        await collector.until(() => collector.requests.length === 1, 5000);
        assert.ok(Date.now() - started >= 140, 'not before the interval');
        assert.equal(collector.requests[0].json.visitors.length, 2);
        await p.close();
      })],

    ['5xx answers are retried with backoff until delivered, each event exactly once', () => {
      let answered = 0;
      return withCollector({ status: () => (++answered <= 3 ? 503 : 200) }, async (collector) => {
        const p = new BatchEventProcessor({
          batchSize: 2, flushInterval: 60_000, endpoint: collector.url,
          retry: { maxRetries: 10, initialBackoff: 10, maxBackoff: 40 },
        });
        const events = Array.from({ length: 4 }, () => impression());
        for (const e of events) p.process(e);
        await p.flush();
        await collector.until(() => events.every((e) => collector.uuids().includes(e.uuid)), 5000);
        await p.close();
        assert.deepEqual(collector.uuids().sort(), events.map((e) => e.uuid).sort(), 'each uuid delivered exactly once');
        const s = p.stats();
        assert.ok(s.retried >= 1, `retried ${s.retried}`);
        assert.deepEqual([s.dispatched, s.failed, s.queued, s.inFlight], [4, 0, 0, 0]);
        assert.ok(collector.requests.length >= 5, `${collector.requests.length} requests (3 refused)`);
      });
    }],

    ['a 400 is given up at once: counted failed, reported to onDispatchError, not retried', () =>
      withCollector({ status: () => 400 }, async (collector) => {
        const p = new BatchEventProcessor({ batchSize: 2, endpoint: collector.url });
        const errors = [];
        p.onDispatchError((e) => errors.push(e));
        p.process(impression());
        p.process(impression());
        await p.flush();
        assert.equal(collector.requests.length, 1);
        assert.deepEqual([p.stats().failed, p.stats().dispatched], [2, 0]);
        assert.equal(errors.length, 1);
        assert.equal(errors[0].status, 400);
        assertInvariant(p, 2);
        await p.close();
      })],

    ['close() sends everything, is idempotent, resolves with a summary; process() afterwards throws "closed"', () =>
      withCollector({}, async (collector) => {
        const p = new BatchEventProcessor({ batchSize: 50, flushInterval: 60_000, endpoint: collector.url });
        for (let i = 0; i < 12; i++) p.process(i % 2 ? impression() : conversion());
        const closing = p.close();
        assert.equal(p.close(), closing, 'the same promise');
        assert.deepEqual(await closing, { dispatched: 12, failed: 0, pending: 0 });
        assert.equal(collector.uuids().length, 12);
        assert.throws(() => p.process(impression()), (e) => e instanceof Error && /closed/.test(e.message));
      })],

    ['close({ timeout }) against a collector that is down resolves by its deadline with the events pending', () =>
      withCollector({ status: () => 503 }, async (collector) => {
        const p = new BatchEventProcessor({ endpoint: collector.url, retry: { maxRetries: 1000, initialBackoff: 20, maxBackoff: 50 } });
        for (let i = 0; i < 5; i++) p.process(impression());
        const started = Date.now();
        const summary = await p.close({ timeout: 300 });
        assert.ok(Date.now() - started < 3000, `resolved after ${Date.now() - started} ms`);
        assert.deepEqual(summary, { dispatched: 0, failed: 0, pending: 5 });
        assert.ok(collector.requests.length >= 2, 'it kept retrying until the deadline');
      })],

    ['bad options and events throw a TypeError naming the field', () => {
      assert.throws(() => new BatchEventProcessor({ batchSize: 0 }), (e) => e instanceof TypeError && e.message === 'batchSize must be an integer >= 1, got 0');
      const p = new BatchEventProcessor({ dispatcher: () => ({ statusCode: 200 }) });
      assert.throws(() => p.process({ ...impression(), user: {} }), (e) => e instanceof TypeError && /^user\.id must be a string/.test(e.message));
      assert.equal(p.stats().queued, 0);
      return p.close();
    }],

    ['golden bytes: what the collector receives is byte-identical to the Optimizely JS SDK 6 payload', () =>
      withCollector({}, async (collector) => {
        // Edge cases one per batch, then seeded events in batches of 10 per context.
        const groups = [
          ...edgeCaseEvents().map(({ event }) => ({ events: [event], batchSize: 1 })),
          ...groupByContext(makeEvents(150, { seed: 17 })).map((events) => ({ events, batchSize: 10 })),
        ];
        let expected = 0;
        const mismatches = [];
        for (const { events, batchSize } of groups) {
          const theirs = await sdkBatches(events, batchSize);
          const from = collector.requests.length;
          const p = new BatchEventProcessor({ batchSize, flushInterval: 3_600_000, endpoint: collector.url });
          for (const e of events) assert.equal(p.process(e), true);
          await p.close();
          const received = new Map(collector.requests.slice(from).map((r) => [firstUuid(r.json), r.body]));
          for (const t of theirs) {
            expected += 1;
            const body = JSON.stringify(t.params);
            const ours = received.get(firstUuid(t.params));
            if (ours !== body) mismatches.push(`\n  ours: ${ours}\n  sdk:  ${body}`);
          }
          assert.equal(collector.requests.length - from, theirs.length, 'as many requests as SDK 6 batches');
        }
        assert.ok(expected >= 70, `${expected} batches compared`);
        assert.deepEqual(mismatches.slice(0, 3), [], `${mismatches.length} of ${expected} bodies differ from SDK 6`);
      })],
  ];
}
