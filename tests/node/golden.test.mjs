// Golden test: the same Optimizely UserEvents go through the Optimizely JavaScript SDK 6's
// own payload builder and through the packed batch-event-processor package; the
// EventBatch must be deep-equal, the request body byte-identical
// (`ourBody === JSON.stringify(sdkParams)`) and the URL (US / EU endpoint) the same.
//
// References:
// - SDK 6 (`@optimizely/optimizely-sdk`): its BatchEventProcessor, taken out of the opaque
//   `createBatchEventProcessor()` wrapper and driven standalone (`start`, `process`,
//   `flush`); its dispatcher receives `buildLogEvent(events)` from
//   event_processor/event_builder/log_event.js. Also the whole client
//   (`createInstance` + `decide` + `trackEvent`) for events the SDK builds itself.
// - `@optimizely/js-sdk-event-processor` 0.10 `formatEvents`: the older builder; it
//   predates the EU endpoint, variation-id normalisation, the campaign-id fallback and
//   cmab_uuid, so it is checked to differ from SDK 6 by exactly those rules.
//
// Run: node tests/support/install-package.mjs && node --test tests/node/golden.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as esm from '../../target/consumer/esm.mjs';
import { makeEvents, edgeCaseEvents, groupByContext, contextKey } from '../support/events.mjs';
import { sdkProcessor, sdkBatches } from '../support/sdk-reference.mjs';

const require = createRequire(import.meta.url);
const sdk = require('@optimizely/optimizely-sdk');
const legacy = require('@optimizely/js-sdk-event-processor');
const cjs = require('../../target/consumer/cjs.cjs');

const US = 'https://logx.optimizely.com/v1/events';
const EU = 'https://eu.logx.optimizely.com/v1/events';
const HOUR = 3_600_000;
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

// ---------------------------------------------------------------- the two builders
// SDK 6: sdkProcessor / sdkBatches from ../support/sdk-reference.mjs; ours:

/** The LogEvents our package sends for `events`, processed in order with `batchSize`. */
async function ourBatches(events, batchSize, { BatchEventProcessor } = esm) {
  const out = [];
  const p = new BatchEventProcessor({
    batchSize,
    flushInterval: HOUR,
    dispatcher: (logEvent) => {
      out.push({ url: logEvent.url, httpVerb: logEvent.httpVerb, headers: logEvent.headers, body: logEvent.body, params: logEvent.params });
      return { statusCode: 200 };
    },
  });
  for (const e of events) assert.equal(p.process(e), true, 'process() refused an event');
  await p.flush();
  await p.close();
  return out;
}

// ---------------------------------------------------------------- comparison

/** Where two strings first differ, with some context, for failure messages. */
function firstDifference(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 60);
  return `first difference at char ${i}:\n  ours: …${JSON.stringify(a.slice(from, i + 60))}…\n  sdk:  …${JSON.stringify(b.slice(from, i + 60))}…`;
}

/** Asserts one of our LogEvents equals the SDK's: URL, verb, EventBatch and bytes. */
function assertSameLogEvent(ours, theirs, label) {
  const sdkBody = JSON.stringify(theirs.params);
  const context = `${label}\n  ours: ${ours.body}\n  sdk:  ${sdkBody}`;
  assert.equal(ours.url, theirs.url, `url differs: ${context}`);
  assert.equal(ours.httpVerb, 'POST');
  assert.deepEqual(ours.headers, { 'Content-Type': 'application/json' });
  assert.deepStrictEqual(JSON.parse(ours.body), JSON.parse(sdkBody), `EventBatch differs: ${context}`);
  assert.ok(ours.body === sdkBody, `body bytes differ (${firstDifference(ours.body, sdkBody)}): ${context}`);
  assert.deepStrictEqual(ours.params, JSON.parse(sdkBody), `params differs from body: ${label}`);
}

/** Asserts two lists of LogEvents are equal batch by batch. */
function assertSameBatches(ours, theirs, label) {
  assert.equal(
    ours.length,
    theirs.length,
    `${label}: ${ours.length} batches from us, ${theirs.length} from the SDK (sizes ours ${ours.map((b) => b.params.visitors.length)} / sdk ${theirs.map((b) => b.params.visitors.length)})`,
  );
  ours.forEach((b, i) => assertSameLogEvent(b, theirs[i], `${label}, batch ${i}`));
}

/** Compares one event per batch; collects failures so one bad event does not hide others. */
async function compareOneByOne(events) {
  const failures = [];
  for (const { name, event } of events) {
    try {
      const [theirs] = await sdkBatches([event], 1000);
      const ours = await ourBatches([event], 1000);
      assert.equal(ours.length, 1, `${name}: expected 1 batch, got ${ours.length}`);
      assertSameLogEvent(ours[0], theirs, name);
    } catch (err) {
      failures.push({ name, event, message: err.message });
    }
  }
  return failures;
}

function report(failures, total) {
  if (failures.length === 0) return;
  const shown = failures
    .slice(0, 5)
    .map((f) => `- ${f.name}\n  input: ${JSON.stringify(f.event)}\n  ${f.message}`)
    .join('\n');
  assert.fail(`${failures.length} of ${total} events differ from SDK 6:\n${shown}`);
}

// ---------------------------------------------------------------- tests

const EDGE = edgeCaseEvents();
const GENERATED = makeEvents(400, { seed: 20240611 }).map((event, i) => ({ name: `generated #${i} (${event.type})`, event }));

test('the inputs cover what the brief asks for', () => {
  const all = [...EDGE, ...GENERATED].map((x) => x.event);
  const imps = all.filter((e) => e.type === 'impression');
  const convs = all.filter((e) => e.type === 'conversion');
  const values = all.flatMap((e) => e.user.attributes.map((a) => typeof a.value));
  assert.ok(all.length >= 24 && imps.length >= 12 && convs.length >= 12);
  for (const t of ['string', 'number', 'boolean']) assert.ok(values.includes(t), `attribute of type ${t}`);
  for (const b of [true, false, undefined]) assert.ok(all.some((e) => e.context.botFiltering === b), `botFiltering ${b}`);
  assert.ok(all.some((e) => e.context.region === 'EU'));
  assert.ok(imps.some((e) => e.variation && /^[0-9]+$/.test(e.variation.id)));
  assert.ok(imps.some((e) => e.variation && e.variation.id && !/^[0-9]+$/.test(e.variation.id)));
  assert.ok(imps.some((e) => !e.variation) && imps.some((e) => !e.layer || !e.layer.id) && imps.some((e) => !e.experiment));
  assert.ok(imps.some((e) => e.cmabUuid) && imps.some((e) => e.enabled === false) && imps.some((e) => e.enabled === true));
  assert.ok(convs.some((e) => e.tags && 'revenue' in e.tags && 'value' in e.tags) && convs.some((e) => e.revenue === null));
});

test(`edge cases: ${EDGE.length} hand-written events, one per batch, byte-identical to SDK 6`, async (t) => {
  for (const { name, event } of EDGE) {
    await t.test(name, async () => {
      const [theirs] = await sdkBatches([event], 1000);
      assert.equal(theirs.url, event.context.region === 'EU' ? EU : US);
      const ours = await ourBatches([event], 1000);
      assert.equal(ours.length, 1, `expected 1 batch, got ${ours.length}`);
      assertSameLogEvent(ours[0], theirs, name);
    });
  }
});

test(`generated: ${GENERATED.length} seeded events, one per batch, byte-identical to SDK 6`, async () => {
  report(await compareOneByOne(GENERATED), GENERATED.length);
});

test('multi-event batches: single-context groups in the same order, batchSize 10 and 1000', async (t) => {
  const events = [...EDGE, ...GENERATED].map((x) => x.event);
  const groups = groupByContext(events);
  assert.ok(groups.length >= 5, 'several contexts');
  for (const batchSize of [10, 1000]) {
    await t.test(`batchSize ${batchSize}`, async () => {
      for (const group of groups) {
        const label = `context ${contextKey(group[0])} (${group.length} events, batchSize ${batchSize})`;
        assertSameBatches(await ourBatches(group, batchSize), await sdkBatches(group, batchSize), label);
      }
    });
  }
});

test('mixed contexts in one stream: every batch single-context and the same visitors as the SDK', async () => {
  // The SDK cuts a batch whenever the context changes; we may group differently, so
  // compare per event: each visitor with the header of the batch that carried it.
  const events = [...EDGE, ...GENERATED].map((x) => x.event);
  const flatten = (batches) =>
    batches
      .flatMap((b) => {
        const params = b.body ? JSON.parse(b.body) : JSON.parse(JSON.stringify(b.params));
        const { visitors, ...header } = params;
        return visitors.map((v) => ({ url: b.url, header, visitor: v }));
      })
      .sort((a, b) => (a.visitor.snapshots[0].events[0].uuid < b.visitor.snapshots[0].events[0].uuid ? -1 : 1));
  const ours = await ourBatches(events, 10);
  const theirs = await sdkBatches(events, 10);
  const contextOf = new Map(events.map((e) => [e.uuid, contextKey(e)]));
  for (const b of ours) {
    assert.ok(b.params.visitors.length <= 10, 'batchSize respected');
    const keys = new Set(b.params.visitors.map((v) => contextOf.get(v.snapshots[0].events[0].uuid)));
    assert.equal(keys.size, 1, `one batch mixes contexts: ${[...keys].join(' | ')}`);
  }
  assert.equal(flatten(ours).length, events.length, 'every event sent once');
  assert.deepStrictEqual(flatten(ours), flatten(theirs));
});

test('events built by the SDK 6 client itself (createInstance + decide + trackEvent)', async () => {
  const datafile = {
    version: '4', revision: '42', accountId: '12133785640', projectId: '6460519658291200',
    anonymizeIP: true, botFiltering: true, region: 'EU', sdkKey: 'golden', environmentKey: 'production', sendFlagDecisions: true,
    attributes: [
      { id: '10401066117', key: 'plan' }, { id: '10401066119', key: 'age' },
      { id: '10401066120', key: 'is_vip' }, { id: '10401066121', key: 'country' },
    ],
    events: [{ id: '15073540046', key: 'purchase', experimentIds: ['20312451137'] }, { id: '15073540047', key: 'add_to_cart', experimentIds: [] }],
    audiences: [], typedAudiences: [], groups: [], variables: [], integrations: [],
    experiments: [{
      id: '20312451137', key: 'checkout_test', layerId: '20322860341', status: 'Running', audienceIds: [], audienceConditions: [], forcedVariations: {},
      trafficAllocation: [{ entityId: '20343060159', endOfRange: 5000 }, { entityId: 'control_v', endOfRange: 10000 }],
      variations: [
        { id: '20343060159', key: 'treatment', featureEnabled: true, variables: [] },
        { id: 'control_v', key: 'control', featureEnabled: false, variables: [] }, // non-numeric: sent as null
      ],
    }],
    featureFlags: [
      { id: '30000001', key: 'checkout_flow', rolloutId: '40000001', experimentIds: ['20312451137'], variables: [] },
      { id: '30000002', key: 'banner', rolloutId: '40000002', experimentIds: [], variables: [] },
    ],
    rollouts: [
      { id: '40000001', experiments: [] },
      { id: '40000002', experiments: [{
        id: '50000001', key: 'default-rollout-40000002', layerId: '40000002', status: 'Running', audienceIds: [], audienceConditions: [], forcedVariations: {},
        trafficAllocation: [{ entityId: '60000001', endOfRange: 10000 }],
        variations: [{ id: '60000001', key: 'on', featureEnabled: true, variables: [] }],
      }] },
    ],
  };
  const userEvents = [];
  const sent = [];
  const { opaque, processor } = sdkProcessor(10, (logEvent) => sent.push(logEvent));
  const process = processor.process.bind(processor);
  processor.process = (event) => {
    userEvents.push(structuredClone(event));
    return process(event);
  };
  const client = sdk.createInstance({
    projectConfigManager: sdk.createStaticProjectConfigManager({ datafile: JSON.stringify(datafile) }),
    eventProcessor: opaque,
    logger: sdk.createLogger({ level: sdk.ERROR }),
  });
  await client.onReady();
  for (let i = 0; i < 12; i++) {
    const user = client.createUserContext(`user-${i}-é "${i}"`, { plan: i % 2 ? 'pro' : 'free', age: 20 + i / 4, is_vip: i % 3 === 0, country: 'Zürich \\ CH', ignored: 'not in datafile' });
    user.decide('checkout_flow');
    user.decide('banner');
    user.trackEvent('purchase', { revenue: 1000 * i + 99, value: `${i}.5`, category: 'shoes', nested: { sku: ['a', 'ü'] } });
    user.trackEvent('add_to_cart');
  }
  await tick();
  await processor.flush();
  await client.close();
  await tick();
  assert.equal(userEvents.length, 48);
  assert.ok(userEvents.some((e) => e.variation?.id === 'control_v'), 'a non-numeric variation id was decided');
  assertSameBatches(await ourBatches(userEvents, 10), sent, 'SDK client events');
  assert.ok(sent.every((l) => l.url === EU));
});

test('the CommonJS entry sends the same bytes as the ESM entry', async () => {
  const events = [...EDGE.slice(0, 12), ...GENERATED.slice(0, 40)].map((x) => x.event);
  for (const group of groupByContext(events)) {
    const viaRequire = await ourBatches(group, 7, cjs);
    assertSameBatches(viaRequire, await sdkBatches(group, 7), 'require() entry');
  }
});

test('@optimizely/js-sdk-event-processor 0.10 formatEvents equals SDK 6 up to the rules SDK 6 added', async (t) => {
  // 0.10 always posts to the US endpoint, sends variation ids as given, campaign_id =
  // layer.id (no fallback to the experiment id) and no cmab_uuid. Applying those four
  // rules to its output must give SDK 6's bytes; anything else would mean the reference
  // builders disagree in a way this test does not know about.
  const normalize = (event, request) => {
    const params = JSON.parse(JSON.stringify(request.params));
    if (event.type === 'impression') {
      const decision = params.visitors[0].snapshots[0].decisions[0];
      const variationId = event.variation?.id;
      decision.variation_id = variationId && /^[0-9]+$/.test(variationId) ? variationId : null;
      const campaign = event.layer?.id || decision.experiment_id || null;
      decision.campaign_id = campaign;
      params.visitors[0].snapshots[0].events[0].entity_id = campaign;
      const { metadata } = decision;
      decision.metadata = { ...metadata, cmab_uuid: event.cmabUuid };
    }
    return { url: event.context.region === 'EU' ? EU : US, body: JSON.stringify(params) };
  };
  let differing = 0;
  for (const { name, event } of [...EDGE, ...GENERATED]) {
    const old = legacy.formatEvents([event]);
    const [theirs] = await sdkBatches([event], 1000);
    const sdkBody = JSON.stringify(theirs.params);
    if (JSON.stringify(old.params) !== sdkBody || old.url !== theirs.url) differing++;
    const fixed = normalize(event, old);
    assert.equal(fixed.url, theirs.url, name);
    assert.equal(fixed.body, sdkBody, `${name}: ${firstDifference(fixed.body, sdkBody)}`);
  }
  t.diagnostic(`0.10 formatEvents differs from SDK 6 for ${differing} of ${EDGE.length + GENERATED.length} events (EU, variation ids, campaign fallback, cmab_uuid)`);
});
