// The Optimizely JavaScript SDK 6 in front of the packed batch-event-processor, through
// the adapter: `createForwardingEventProcessor(p.asEventDispatcher())` (DESIGN §3-§4).
//
// The real SDK client runs a real datafile (tests/support/datafile.mjs): 200 users each
// decide a flag (one impression) and track an event (one conversion, two for every third
// user). The SDK's forwarding processor hands each event over as a single-visitor
// LogEvent; our processor re-batches them (batchSize 10) and POSTs them to a collector on
// 127.0.0.1. The same flow (same user ids, same attributes, same tags) then runs again
// through the SDK's own `createBatchEventProcessor({ eventDispatcher, batchSize: 10 })`,
// whose dispatcher POSTs `JSON.stringify(logEvent.params)` (what the SDK's own
// dispatchers send) to a second collector, and the two are compared event by event:
// each visitor's JSON must be identical once uuid and timestamp (which differ between
// runs) are normalized, and every batch header must be identical.
//
// Also: invalid LogEvents reject with a TypeError naming the field and change nothing;
// a full queue rejects (never drops silently; counted in stats().dropped); closing the
// SDK client does not close our processor; after our close() the adapter rejects.
//
// Run: node tests/support/install-package.mjs && node --test tests/node/sdk-adapter.test.mjs
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { startCollector } from '../support/collector.mjs';
import { datafileJSON, flowUsers, runFlow, IDS, FLAG_KEY, EVENT_KEY } from '../support/datafile.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const consumerEntry = path.join(root, 'target/consumer/esm.mjs');
if (!existsSync(consumerEntry)) {
  execFileSync(process.execPath, [path.join(root, 'tests/support/install-package.mjs')], { stdio: 'inherit' });
}
const { BatchEventProcessor } = await import(pathToFileURL(consumerEntry).href);

const require = createRequire(import.meta.url);
const sdk = require('@optimizely/optimizely-sdk');

const HOUR = 3_600_000;
const BATCH_SIZE = 10;
const USERS = 200;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An SDK 6 client on the shared datafile with the given (opaque) event processor. */
function sdkClient(eventProcessor) {
  return sdk.createInstance({
    projectConfigManager: sdk.createStaticProjectConfigManager({ datafile: datafileJSON }),
    eventProcessor,
    logger: sdk.createLogger({ level: sdk.ERROR }),
  });
}

/** Waits until `predicate()` holds (polling), or fails after `ms`. */
async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The events (with their visitor and batch header) in a parsed EventBatch. */
function eventsOf(batch) {
  const { visitors, ...header } = batch;
  return visitors.flatMap((visitor) =>
    visitor.snapshots.flatMap((s) => s.events.map((e) => ({ uuid: e.uuid, key: e.key, visitor, header }))),
  );
}

/**
 * What identifies an event across the two runs (uuids and timestamps differ): the
 * visitor, the event key and, for conversions, the unique `category` tag of the flow.
 */
function pairKey(visitor) {
  const e = visitor.snapshots[0].events[0];
  return `${visitor.visitor_id}|${e.key}|${e.tags?.category ?? ''}`;
}

/** A visitor's JSON with only uuid and timestamp normalized. */
function normalizedVisitor(visitor) {
  const v = structuredClone(visitor);
  for (const s of v.snapshots) {
    for (const e of s.events) {
      assert.equal(typeof e.uuid, 'string');
      assert.equal(typeof e.timestamp, 'number');
      e.uuid = '<uuid>';
      e.timestamp = 0;
    }
  }
  return JSON.stringify(v);
}

/** Per event (by pairKey): the normalized visitor JSON and the header of its batch. */
function byPairKey(requests) {
  const out = new Map();
  for (const r of requests) {
    for (const visitor of r.json.visitors) {
      const key = pairKey(visitor);
      assert.ok(!out.has(key), `event ${key} received twice`);
      const { visitors, ...header } = r.json;
      out.set(key, { visitor: normalizedVisitor(visitor), header: JSON.stringify(header) });
    }
  }
  return out;
}

/** Shows where two strings first differ. */
function firstDifference(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 60);
  return `at char ${i}:\n  ours: …${a.slice(from, i + 80)}…\n  sdk:  …${b.slice(from, i + 80)}…`;
}

// ------------------------------------------------------------------------------------
// The same flow twice: through our adapter, and through the SDK's own batch processor.

describe(`SDK 6 client, ${USERS} users: forwarding processor + asEventDispatcher() vs the SDK's own batch processor`, () => {
  const users = flowUsers(USERS);
  let ours; // { collector, p, forwarded, results, expected }
  let theirs; // { collector, expected, sdkResponses }

  before(async () => {
    // Run 1: SDK -> createForwardingEventProcessor -> our adapter -> collector.
    {
      const collector = await startCollector();
      const p = new BatchEventProcessor({ batchSize: BATCH_SIZE, flushInterval: HOUR, endpoint: collector.url });
      const adapter = p.asEventDispatcher();
      const forwarded = [];
      const results = [];
      const client = sdkClient(
        sdk.createForwardingEventProcessor({
          dispatchEvent(logEvent) {
            forwarded.push(structuredClone(logEvent)); // what the SDK handed over, as it was
            const result = adapter.dispatchEvent(logEvent);
            results.push(result.then((value) => ({ value }), (error) => ({ error })));
            return result;
          },
        }),
      );
      await client.onReady();
      const expected = runFlow(client, users);
      await until(() => forwarded.length === expected, 5000, `${expected} LogEvents from the SDK`);
      const settled = await Promise.all(results);
      await p.flush();
      await collector.until(() => collector.uuids().length >= expected, 10000);
      await client.close();
      ours = { collector, p, forwarded, settled, expected, statsAfterFlush: p.stats() };
    }
    // Run 2: the same flow through the SDK's own batch processor -> second collector.
    {
      const collector = await startCollector();
      const sdkResponses = [];
      const eventProcessor = sdk.createBatchEventProcessor({
        batchSize: BATCH_SIZE,
        flushInterval: HOUR,
        eventDispatcher: {
          // What the SDK's own dispatchers send: the params, JSON.stringify'd, POSTed.
          async dispatchEvent(logEvent) {
            const res = await fetch(collector.url, {
              method: logEvent.httpVerb,
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(logEvent.params),
            });
            await res.arrayBuffer();
            sdkResponses.push(res.status);
            return { statusCode: res.status };
          },
        },
      });
      const client = sdkClient(eventProcessor);
      await client.onReady();
      const expected = runFlow(client, users);
      // SDK 6's BatchEventProcessor.process() is async (it awaits its event store before
      // queueing): close() right away would flush an empty queue, strand the last partial
      // batch and leave its flush timer armed. Let every process() call queue first.
      await sleep(0);
      await client.close(); // the SDK flushes what is queued when it stops
      await collector.until(() => collector.uuids().length >= expected, 10000);
      theirs = { collector, expected, sdkResponses };
    }
  });

  after(async () => {
    await ours?.p.close();
    await ours?.collector.close();
    await theirs?.collector.close();
  });

  test('the SDK forwarded one single-visitor, single-event LogEvent per impression and conversion', () => {
    const conversions = users.reduce((n, u) => n + u.tracks.length, 0);
    assert.equal(ours.expected, USERS + conversions);
    assert.equal(ours.forwarded.length, ours.expected);
    assert.notEqual(ours.expected % BATCH_SIZE, 0, 'the flow leaves a partial last batch');
    const keys = ours.forwarded.map((l) => {
      assert.equal(l.httpVerb, 'POST');
      assert.equal(l.url, 'https://logx.optimizely.com/v1/events');
      assert.equal(l.params.visitors.length, 1);
      assert.equal(l.params.visitors[0].snapshots.length, 1);
      assert.equal(l.params.visitors[0].snapshots[0].events.length, 1);
      return l.params.visitors[0].snapshots[0].events[0].key;
    });
    assert.equal(keys.filter((k) => k === 'campaign_activated').length, USERS);
    assert.equal(keys.filter((k) => k === EVENT_KEY).length, conversions);
  });

  test('dispatchEvent resolved { statusCode: 200 } for every LogEvent', () => {
    assert.equal(ours.settled.length, ours.expected);
    for (const s of ours.settled) {
      assert.equal(s.error, undefined, `dispatchEvent rejected: ${s.error}`);
      assert.deepEqual(s.value, { statusCode: 200 });
    }
  });

  test('the collector received every event the SDK produced, once (by uuid)', () => {
    const sent = ours.forwarded.map((l) => l.params.visitors[0].snapshots[0].events[0].uuid);
    assert.equal(new Set(sent).size, sent.length, 'the SDK produced distinct uuids');
    const received = ours.collector.uuids();
    assert.equal(received.length, sent.length, 'no event lost or duplicated');
    assert.deepEqual([...received].sort(), [...sent].sort());
    const s = ours.statsAfterFlush;
    assert.deepEqual(
      { dispatched: s.dispatched, batches: s.batches, queued: s.queued, inFlight: s.inFlight, failed: s.failed, dropped: s.dropped },
      { dispatched: ours.expected, batches: ours.collector.requests.length, queued: 0, inFlight: 0, failed: 0, dropped: 0 },
    );
  });

  test(`batches of exactly batchSize ${BATCH_SIZE}, except the last one per context`, () => {
    const byContext = new Map();
    for (const r of ours.collector.requests) {
      assert.equal(r.method, 'POST');
      assert.equal(r.url, '/v1/events');
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /^application\/json/);
      const { visitors, ...header } = r.json;
      const key = JSON.stringify(header);
      byContext.set(key, [...(byContext.get(key) ?? []), visitors.length]);
    }
    assert.equal(byContext.size, 1, 'one datafile: one context');
    for (const [context, sizes] of byContext) {
      const partial = sizes.filter((n) => n !== BATCH_SIZE);
      assert.ok(partial.length <= 1, `more than one partial batch in ${context}: ${sizes}`);
      const total = sizes.reduce((a, b) => a + b, 0);
      assert.deepEqual(partial, total % BATCH_SIZE ? [total % BATCH_SIZE] : [], `sizes ${sizes}`);
    }
  });

  test('every visitor received is byte-for-byte the visitor the SDK forwarded, under the same header', () => {
    const forwardedByUuid = new Map(
      ours.forwarded.map((l) => {
        const { visitors, ...header } = l.params;
        return [visitors[0].snapshots[0].events[0].uuid, { visitor: JSON.stringify(visitors[0]), header: JSON.stringify(header) }];
      }),
    );
    for (const r of ours.collector.requests) {
      // The body is canonical JSON, so comparing re-serialized parts compares bytes.
      assert.equal(JSON.stringify(r.json), r.body, 'body is plain JSON.stringify output');
      for (const e of eventsOf(r.json)) {
        const want = forwardedByUuid.get(e.uuid);
        assert.ok(want, `unknown uuid ${e.uuid}`);
        const got = JSON.stringify(e.visitor);
        assert.ok(got === want.visitor, `visitor of ${e.uuid} differs ${firstDifference(got, want.visitor)}`);
        assert.equal(JSON.stringify(e.header), want.header);
      }
    }
  });

  test("the same events as the SDK's own batch processor sends (visitors equal up to uuid/timestamp, same headers)", () => {
    assert.equal(theirs.expected, ours.expected, 'both runs produced the same number of events');
    assert.ok(theirs.sdkResponses.every((s) => s === 200));
    for (const r of theirs.collector.requests) assert.equal(JSON.stringify(r.json), r.body);
    const mine = byPairKey(ours.collector.requests);
    const ref = byPairKey(theirs.collector.requests);
    assert.equal(ref.size, theirs.expected, 'the SDK run delivered every event');
    assert.deepEqual([...mine.keys()].sort(), [...ref.keys()].sort(), 'the same events (visitor, key, tags) in both runs');
    const failures = [];
    for (const [key, want] of ref) {
      const got = mine.get(key);
      if (got.visitor !== want.visitor) failures.push(`${key}: visitor differs ${firstDifference(got.visitor, want.visitor)}`);
      if (got.header !== want.header) failures.push(`${key}: header differs\n  ours: ${got.header}\n  sdk:  ${want.header}`);
    }
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${ref.size} events differ`);
    // And the header is the datafile's context, as the SDK sends it.
    const header = JSON.parse([...ref.values()][0].header);
    assert.deepEqual(header, {
      client_name: 'node-sdk',
      client_version: header.client_version,
      account_id: IDS.accountId,
      project_id: IDS.projectId,
      revision: IDS.revision,
      anonymize_ip: true,
      enrich_decisions: true,
    });
    assert.match(header.client_version, /^6\./);
  });

  test("the same batch sizes as the SDK's own batch processor", () => {
    const sizes = (c) => c.requests.map((r) => r.json.visitors.length).sort((a, b) => a - b);
    assert.deepEqual(sizes(ours.collector), sizes(theirs.collector));
  });

  test('the datafile exercised what it should: both variations, bot filtering, attributes, revenue', () => {
    const visitors = ours.collector.requests.flatMap((r) => r.json.visitors);
    const decisions = visitors.flatMap((v) => v.snapshots.flatMap((s) => s.decisions ?? []));
    assert.equal(decisions.length, USERS);
    assert.deepEqual(new Set(decisions.map((d) => d.variation_id)), new Set([IDS.treatment, IDS.control]));
    assert.ok(decisions.every((d) => d.campaign_id === IDS.layer && d.experiment_id === IDS.experiment && d.metadata.flag_key === FLAG_KEY));
    for (const v of visitors) {
      const attrs = v.attributes.map((a) => a.key);
      assert.deepEqual(attrs, ['plan', 'age', 'is_vip', '$opt_bot_filtering'], 'unknown attribute dropped, bot filtering appended');
      assert.equal(v.attributes.at(-1).value, true);
    }
    const conversions = visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events)).filter((e) => e.key === EVENT_KEY);
    assert.ok(conversions.every((e) => e.entity_id === IDS.event && e.revenue === e.tags.revenue && typeof e.tags.category === 'string'));
  });
});

// ------------------------------------------------------------------------------------
// Validation, full queue, lifecycle.

/** Real LogEvents from the SDK: one impression and one conversion of `userId`. */
async function sdkLogEvents(userId = 'sample-user') {
  const forwarded = [];
  const client = sdkClient(
    sdk.createForwardingEventProcessor({
      dispatchEvent: async (logEvent) => (forwarded.push(structuredClone(logEvent)), { statusCode: 200 }),
    }),
  );
  await client.onReady();
  runFlow(client, [{ id: userId, attributes: { plan: 'pro', age: 31 }, tracks: [{ revenue: 4200, category: 'shoes' }] }]);
  await until(() => forwarded.length === 2, 5000, 'two LogEvents');
  await client.close();
  const [impression, conversion] = forwarded;
  assert.ok(impression.params.visitors[0].snapshots[0].decisions, 'first is the impression');
  return { impression, conversion };
}

/** A processor that records what it would send instead of POSTing it. */
function recordingProcessor(options = {}) {
  const sent = [];
  const p = new BatchEventProcessor({
    batchSize: 100,
    flushInterval: HOUR,
    dispatcher: (logEvent) => {
      sent.push(JSON.parse(logEvent.body));
      return { statusCode: 200 };
    },
    ...options,
  });
  return { p, sent, uuids: () => sent.flatMap((b) => eventsOf(b).map((e) => e.uuid)) };
}

/** A copy of `logEvent` with `edit(params)` applied. */
function edited(logEvent, edit) {
  const copy = structuredClone(logEvent);
  edit(copy.params);
  return copy;
}

const counters = (p) => {
  const { queued, inFlight, dispatched, dropped, failed } = p.stats();
  return { queued, inFlight, dispatched, dropped, failed };
};

test('invalid LogEvents: dispatchEvent rejects and processLogEvent throws a TypeError naming the field; nothing queued or dropped', async (t) => {
  const { impression, conversion } = await sdkLogEvents();
  const V = 'logEvent.params.visitors[0]';
  // Structural problems, named by their path in the LogEvent.
  const structural = [
    [null, 'logEvent'],
    ['not an object', 'logEvent'],
    [{ url: impression.url, httpVerb: 'POST' }, 'logEvent.params'],
    [edited(impression, (p) => (p.visitors = { 0: p.visitors[0] })), 'logEvent.params.visitors'],
    [edited(impression, (p) => (p.visitors = [null])), V],
    [edited(impression, (p) => delete p.visitors[0].snapshots), `${V}.snapshots`],
    [edited(impression, (p) => (p.visitors[0].attributes = 'plan=pro')), `${V}.attributes`],
    [edited(conversion, (p) => (p.visitors[0].snapshots[0].events = {})), `${V}.snapshots[0].events`],
    [edited(impression, (p) => p.visitors[0].snapshots[0].decisions.push(p.visitors[0].snapshots[0].decisions[0])), `${V}.snapshots[0]`],
  ];
  // Values of the wrong type: the message names the field by its path in the LogEvent
  // the caller passed (`logEvent.params.visitors[0].visitor_id`).
  const leaves = [
    [edited(impression, (p) => (p.account_id = 12133785640)), 'logEvent.params.account_id', 'context.accountId'],
    [edited(impression, (p) => (p.anonymize_ip = 'yes')), 'logEvent.params.anonymize_ip', 'context.anonymizeIP'],
    [edited(impression, (p) => (p.visitors[0].visitor_id = 7)), `${V}.visitor_id`, 'user.id'],
    [edited(impression, (p) => (p.visitors[0].attributes[0].value = { nested: true })), `${V}.attributes[0].value`, 'user.attributes[0].value'],
    [edited(impression, (p) => (p.visitors[0].snapshots[0].events[0].timestamp = 'now')), `${V}.snapshots[0].events[0].timestamp`, 'timestamp'],
    [edited(impression, (p) => (p.visitors[0].snapshots[0].decisions[0].metadata.enabled = 'true')), `${V}.snapshots[0].decisions[0].metadata.enabled`, 'enabled'],
    [edited(conversion, (p) => delete p.visitors[0].snapshots[0].events[0].key), `${V}.snapshots[0].events[0].key`, 'event.key'],
    [edited(conversion, (p) => (p.visitors[0].snapshots[0].events[0].revenue = 'lots')), `${V}.snapshots[0].events[0].revenue`, 'revenue'],
    // All or none: the first visitor is valid, the second is not; neither is queued.
    [edited(conversion, (p) => p.visitors.push({ ...structuredClone(p.visitors[0]), visitor_id: null })), 'logEvent.params.visitors[1].visitor_id', 'user.id'],
  ];

  const { p, sent } = recordingProcessor();
  const adapter = p.asEventDispatcher();
  const before = counters(p);
  const check = async (logEvent, mentions) => {
    let thrown;
    try {
      p.processLogEvent(logEvent);
    } catch (e) {
      thrown = e;
    }
    assert.ok(thrown instanceof TypeError, `processLogEvent: expected a TypeError, got ${thrown}`);
    assert.ok(thrown.message.includes(mentions), `processLogEvent: "${thrown.message}" does not name ${mentions}`);
    const rejected = await adapter.dispatchEvent(logEvent).then(
      (v) => assert.fail(`dispatchEvent resolved ${JSON.stringify(v)}`),
      (e) => e,
    );
    assert.ok(rejected instanceof TypeError, `dispatchEvent: expected a TypeError, got ${rejected}`);
    assert.equal(rejected.message, thrown.message);
    assert.deepEqual(counters(p), before, 'nothing queued, nothing counted as dropped');
    return thrown.message;
  };
  for (const [logEvent, field] of structural) {
    await t.test(`structural: ${field}`, () => check(logEvent, field));
  }
  for (const [logEvent, field] of leaves) {
    await t.test(`value: names ${field}`, () => check(logEvent, field));
  }
  await t.test(
    'value errors name the field by its path in the LogEvent (logEvent.params.…)',
    async () => {
      const failures = [];
      for (const [logEvent, field] of leaves) {
        try {
          p.processLogEvent(logEvent);
          failures.push(`${field}: accepted`);
        } catch (e) {
          if (!e.message.includes(field)) failures.push(`${field}: "${e.message}"`);
        }
      }
      assert.deepEqual(failures, []);
    },
  );

  // The unmodified LogEvents are accepted (each case above fails because of its one change).
  assert.deepEqual(await adapter.dispatchEvent(impression), { statusCode: 200 });
  assert.equal(p.processLogEvent(conversion), true);
  await p.flush();
  assert.deepEqual(
    sent.flatMap((b) => eventsOf(b).map((e) => e.uuid)),
    [impression, conversion].map((l) => l.params.visitors[0].snapshots[0].events[0].uuid),
  );
  await p.close();
});

test('queue full: dispatchEvent rejects with an Error (not a TypeError), nothing is accepted, stats().dropped counts it', async () => {
  const { impression, conversion } = await sdkLogEvents();
  const uuidOf = (l) => l.params.visitors[0].snapshots[0].events[0].uuid;
  const { p, uuids } = recordingProcessor({ maxQueueSize: 3 });
  const adapter = p.asEventDispatcher();
  const accepted = [];
  for (let i = 0; i < 3; i++) {
    const l = edited(i % 2 ? conversion : impression, (params) => (params.visitors[0].snapshots[0].events[0].uuid = `fill-${i}`));
    assert.deepEqual(await adapter.dispatchEvent(l), { statusCode: 200 });
    accepted.push(uuidOf(l));
  }
  assert.equal(p.stats().queued, 3);
  const refused = await adapter.dispatchEvent(impression).then(
    (v) => assert.fail(`resolved ${JSON.stringify(v)} with a full queue`),
    (e) => e,
  );
  assert.ok(refused instanceof Error && !(refused instanceof TypeError), `got ${refused}`);
  assert.match(refused.message, /full|maxQueueSize/i);
  assert.deepEqual(counters(p), { queued: 3, inFlight: 0, dispatched: 0, dropped: 1, failed: 0 });

  // processLogEvent: false, synchronously; a two-visitor LogEvent is refused whole.
  assert.equal(p.processLogEvent(conversion), false);
  const two = edited(conversion, (params) => params.visitors.push(structuredClone(params.visitors[0])));
  assert.equal(p.processLogEvent(two), false);
  assert.deepEqual(counters(p), { queued: 3, inFlight: 0, dispatched: 0, dropped: 4, failed: 0 });

  await p.flush(); // room again
  assert.deepEqual(uuids(), accepted, 'only the accepted events were sent');
  assert.equal(p.processLogEvent(two), true, 'both visitors fit now');
  assert.deepEqual(await adapter.dispatchEvent(impression), { statusCode: 200 });
  await p.close();
  assert.deepEqual(uuids(), [...accepted, uuidOf(two), uuidOf(two), uuidOf(impression)]);
  const s = p.stats();
  assert.equal(s.dispatched, 6);
  assert.equal(s.dropped, 4);
});

test('queue full behind the SDK client: every refused event is a rejection the dispatcher sees and is counted as dropped', async () => {
  const { p, uuids } = recordingProcessor({ maxQueueSize: 5 });
  const adapter = p.asEventDispatcher();
  const outcomes = [];
  const client = sdkClient(
    sdk.createForwardingEventProcessor({
      dispatchEvent(logEvent) {
        const uuid = logEvent.params.visitors[0].snapshots[0].events[0].uuid;
        const result = adapter.dispatchEvent(logEvent);
        // Observing the rejection here also keeps it from being unhandled: the SDK
        // itself does not catch what process() returns (see the todo test below).
        outcomes.push(result.then(() => ({ uuid, ok: true }), (error) => ({ uuid, ok: false, error })));
        return result;
      },
    }),
  );
  await client.onReady();
  const produced = runFlow(client, flowUsers(6, 'full'));
  await until(() => outcomes.length === produced, 5000, `${produced} LogEvents`);
  const settled = await Promise.all(outcomes);
  const ok = settled.filter((o) => o.ok);
  const refused = settled.filter((o) => !o.ok);
  assert.equal(ok.length, 5);
  assert.equal(refused.length, produced - 5);
  for (const r of refused) assert.ok(r.error instanceof Error && !(r.error instanceof TypeError), String(r.error));
  assert.equal(p.stats().dropped, refused.length, 'every refused event is counted');
  await client.close();
  await p.close();
  assert.deepEqual(uuids(), ok.map((o) => o.uuid), 'exactly the accepted events were sent');
});

test(
  'an SDK client in front of a full queue does not crash the Node process (the refusal is a handled rejection)',
  () => {
    const script = `
      import { createRequire } from 'node:module';
      const { BatchEventProcessor } = await import(${JSON.stringify(pathToFileURL(consumerEntry).href)});
      const { datafileJSON, flowUsers, runFlow } = await import(${JSON.stringify(new URL('../support/datafile.mjs', import.meta.url).href)});
      const sdk = createRequire(${JSON.stringify(import.meta.url)})('@optimizely/optimizely-sdk');
      const p = new BatchEventProcessor({ maxQueueSize: 1, flushInterval: 3600000, dispatcher: () => ({ statusCode: 200 }) });
      const client = sdk.createInstance({
        projectConfigManager: sdk.createStaticProjectConfigManager({ datafile: datafileJSON }),
        eventProcessor: sdk.createForwardingEventProcessor(p.asEventDispatcher()),
        logger: sdk.createLogger({ level: sdk.ERROR }),
      });
      await client.onReady();
      runFlow(client, flowUsers(2, 'crash'));
      await new Promise((r) => setTimeout(r, 100));
      await client.close();
      await p.close();
      console.log('survived, dropped', p.stats().dropped);
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20000 });
    assert.equal(child.status, 0, `exit ${child.status}\n${child.stderr.split('\n').slice(0, 8).join('\n')}`);
    assert.match(child.stdout, /survived, dropped [1-9]/);
  },
);

test('closing the SDK client does not close our processor; our close() makes the adapter reject with "closed"', async () => {
  const collector = await startCollector();
  try {
    const p = new BatchEventProcessor({ batchSize: 100, flushInterval: HOUR, endpoint: collector.url });
    const adapter = p.asEventDispatcher();
    const forwarded = [];
    const clientFor = () =>
      sdkClient(
        sdk.createForwardingEventProcessor({
          dispatchEvent: (logEvent) => (forwarded.push(logEvent), adapter.dispatchEvent(logEvent)),
        }),
      );
    const first = clientFor();
    await first.onReady();
    const n1 = runFlow(first, flowUsers(3, 'first-client'));
    await until(() => forwarded.length === n1, 5000, 'first client events');
    await first.close();
    await sleep(20);
    // Nothing was flushed or closed by the SDK's close(): the events wait for us.
    assert.equal(collector.requests.length, 0, 'client.close() did not flush our queue');
    assert.deepEqual(counters(p), { queued: n1, inFlight: 0, dispatched: 0, dropped: 0, failed: 0 });

    // The processor still takes events: directly, and from a second SDK client.
    assert.deepEqual(await adapter.dispatchEvent(forwarded[0]), { statusCode: 200 });
    const second = clientFor();
    await second.onReady();
    const n2 = runFlow(second, flowUsers(2, 'second-client'));
    await until(() => forwarded.length === n1 + n2, 5000, 'second client events');
    await second.close();

    const summary = await p.close();
    assert.equal(summary.dispatched, n1 + n2 + 1);
    assert.equal(summary.pending, 0);
    assert.equal(collector.uuids().length, n1 + n2 + 1);
    assert.ok(collector.uuids().includes(forwarded[0].params.visitors[0].snapshots[0].events[0].uuid));

    // After our close(): an Error mentioning "closed", not a TypeError, and nothing counted.
    const rejected = await adapter.dispatchEvent(forwarded[1]).then(
      (v) => assert.fail(`resolved ${JSON.stringify(v)} after close()`),
      (e) => e,
    );
    assert.ok(rejected instanceof Error && !(rejected instanceof TypeError), String(rejected));
    assert.match(rejected.message, /closed/);
    assert.throws(
      () => p.processLogEvent(forwarded[1]),
      (e) => e instanceof Error && !(e instanceof TypeError) && /closed/.test(e.message),
    );
    assert.equal(p.stats().dropped, 0);
  } finally {
    await collector.close();
  }
});
