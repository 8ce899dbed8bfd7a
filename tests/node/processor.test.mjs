// The built, packed package in Node 20, imported like a user would, against a real
// HTTP collector on 127.0.0.1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startCollector } from '../support/collector.mjs';
import { plainImpression, PLAIN_CONTEXT as CONTEXT } from '../support/events.mjs';
import { BatchEventProcessor } from '../../target/consumer/esm.mjs';

const require = createRequire(import.meta.url);
const collector = await startCollector();
after(() => collector.close());

let seq = 0;

function impression(overrides = {}) {
  seq += 1;
  return plainImpression(seq, { user: { id: `visitor-${seq % 7}`, attributes: [{ entityId: '101', key: 'plan', value: 'pro' }] }, ...overrides });
}

function conversion(overrides = {}) {
  const uuid = `conv-${++seq}`;
  return {
    type: 'conversion',
    uuid,
    timestamp: 1700000000000 + seq,
    context: { ...CONTEXT },
    user: { id: 'buyer', attributes: [] },
    event: { id: '55', key: 'purchase' },
    revenue: 4200,
    value: 1.5,
    tags: { revenue: 4200, value: 1.5, category: 'shoes' },
    ...overrides,
  };
}

const sent = (from) => collector.requests.slice(from);

test('ESM import and require() both give a working BatchEventProcessor', async () => {
  const cjs = require('../../target/consumer/cjs.cjs');
  assert.equal(typeof cjs.BatchEventProcessor, 'function');
  const from = collector.requests.length;
  const p = new cjs.BatchEventProcessor({ endpoint: collector.url });
  assert.equal(p.process(impression()), true);
  await p.close();
  assert.equal(sent(from).length, 1);
});

test('POSTs JSON batches of batchSize to the endpoint with the default fetch dispatcher', async () => {
  const from = collector.requests.length;
  const p = new BatchEventProcessor({ batchSize: 3, endpoint: collector.url });
  const events = Array.from({ length: 7 }, () => impression());
  for (const e of events) assert.equal(p.process(e), true);
  await collector.until(() => sent(from).length === 2);
  assert.equal(p.stats().queued, 1);
  await p.flush();
  const reqs = sent(from);
  assert.deepEqual(reqs.map((r) => r.json.visitors.length), [3, 3, 1]);
  for (const r of reqs) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/v1/events');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.json.account_id, '12345');
    assert.equal(r.json.enrich_decisions, true);
  }
  const uuids = reqs.flatMap((r) => r.json.visitors.map((v) => v.snapshots[0].events[0].uuid));
  assert.deepEqual(uuids, events.map((e) => e.uuid));
  assert.deepEqual(p.stats(), { queued: 0, inFlight: 0, dispatched: 7, batches: 3, retried: 0, failed: 0, dropped: 0, bytesSent: reqs.reduce((n, r) => n + Buffer.byteLength(r.body), 0) });
  await p.close();
});

test('sends a partial batch once flushInterval has passed', async () => {
  const from = collector.requests.length;
  const p = new BatchEventProcessor({ batchSize: 100, flushInterval: 150, endpoint: collector.url });
  const started = Date.now();
  p.process(impression());
  p.process(conversion());
  await collector.until(() => sent(from).length === 1, 5000);
  assert.ok(Date.now() - started >= 140, 'not before the interval');
  assert.equal(sent(from)[0].json.visitors.length, 2);
  await p.close();
});

test('close() flushes everything, is idempotent, and process() afterwards throws', async () => {
  const from = collector.requests.length;
  const p = new BatchEventProcessor({ batchSize: 50, flushInterval: 60000, endpoint: collector.url });
  for (let i = 0; i < 12; i++) p.process(i % 2 ? impression() : conversion());
  const a = p.close();
  assert.equal(p.close(), a, 'the same promise');
  await a;
  assert.equal(sent(from).reduce((n, r) => n + r.json.visitors.length, 0), 12);
  assert.throws(() => p.process(impression()), (e) => e instanceof Error && /closed/.test(e.message));
});

test('never mixes contexts: region, project and bot filtering split batches; EU goes to the EU endpoint', async () => {
  const urls = [];
  const bodies = [];
  const p = new BatchEventProcessor({
    batchSize: 10,
    dispatcher: (e) => {
      urls.push(e.url);
      bodies.push(e.params);
      return { statusCode: 200 };
    },
  });
  p.process(impression());
  p.process(impression({ context: { ...impression().context, region: 'EU' } }));
  p.process(impression({ context: { ...impression().context, projectId: 'other' } }));
  p.process(impression({ context: { ...impression().context, botFiltering: true } }));
  await p.flush();
  assert.equal(bodies.length, 4);
  assert.deepEqual(urls.sort(), [
    'https://eu.logx.optimizely.com/v1/events',
    'https://logx.optimizely.com/v1/events',
    'https://logx.optimizely.com/v1/events',
    'https://logx.optimizely.com/v1/events',
  ]);
  await p.close();
});

test('two processors in one module, contexts interleaved: every batch carries the context of its events, after refused, thrown and re-entrant events too', async () => {
  // The packer leaves out a context equal to the last one copied into wasm memory, and
  // Rust puts that one back: it must never be another processor's, one of an event
  // that was refused or threw, or one a getter changed in between.
  const A = { ...CONTEXT, projectId: 'pa', revision: '1' };
  const B = { ...CONTEXT, projectId: 'pb', region: 'EU', botFiltering: true };
  const C = { ...CONTEXT, projectId: 'pc' };
  const batches = [];
  const make = (name, options = {}) =>
    new BatchEventProcessor({
      batchSize: 4,
      dispatcher: (e) => {
        batches.push({ name, url: e.url, params: e.params });
        return { statusCode: 200 };
      },
      ...options,
    });
  const p1 = make('p1');
  const p2 = make('p2');
  const p3 = make('p3', { maxPayloadBytes: 20_000 });
  const expected = new Map();
  let n = 0;
  // An event expected in a batch of `project` (`refused`: expected in none).
  const ev = (ctx, project, overrides = {}, refused = false) => {
    const id = `${project}-${++n}`;
    if (!refused) expected.set(id, project);
    // A fresh copy each time: equal values, not the same object.
    return impression({ context: { ...ctx }, user: { id, attributes: [] }, ...overrides });
  };
  for (let i = 0; i < 12; i++) {
    assert.equal(p1.process(ev(A, 'pa')), true);
    assert.equal(p2.process(ev(B, 'pb')), true);
    if (i % 3 === 0) assert.equal(p1.process(ev(B, 'pb')), true);
    assert.equal(p2.process(ev(B, 'pb')), true);
  }
  // Thrown by the packer after the context was read (last copied: B on p2).
  assert.equal(p1.process(ev(A, 'pa')), true);
  assert.throws(() => p1.process(ev(B, 'pb', { user: { id: 'x', attributes: 'nope' } }, true)), TypeError);
  assert.equal(p1.process(ev(B, 'pb')), true);
  assert.equal(p1.process(ev(A, 'pa')), true);
  // Refused by Rust after the copy (a negative timestamp).
  assert.throws(() => p1.process(ev(B, 'pb', { timestamp: -5 }, true)), TypeError);
  assert.equal(p1.process(ev(A, 'pa')), true);
  assert.throws(() => p2.process(ev(B, 'pb', { timestamp: -5 }, true)), TypeError);
  assert.equal(p2.process(ev(B, 'pb')), true);
  // Refused for its size before the copy.
  assert.equal(p3.process(ev(A, 'pa')), true);
  assert.throws(() => p3.process(ev(B, 'pb', { user: { id: 'y'.repeat(30_000), attributes: [] } }, true)), /maxPayloadBytes|too large/i);
  assert.equal(p3.process(ev(B, 'pb')), true);
  // One context object, changed between two events.
  const shared = { ...A };
  assert.equal(p1.process(impression({ context: shared, user: { id: 'pa-shared', attributes: [] } })), true);
  shared.projectId = 'pd';
  assert.equal(p1.process(impression({ context: shared, user: { id: 'pd-shared', attributes: [] } })), true);
  expected.set('pa-shared', 'pa');
  expected.set('pd-shared', 'pd');
  // A getter read after the context packs and copies an event with another context.
  for (const [outerCtx, outerProject, innerCtx, innerProject] of [[A, 'pa', B, 'pb'], [B, 'pb', C, 'pc'], [C, 'pc', C, 'pc']]) {
    assert.equal(p1.process(ev(outerCtx, outerProject)), true);
    const outer = ev(outerCtx, outerProject);
    const id = outer.user.id;
    outer.user = {
      attributes: [],
      get id() {
        assert.equal(p2.process(ev(innerCtx, innerProject)), true);
        return id;
      },
    };
    assert.equal(p1.process(outer), true);
    assert.equal(p1.process(ev(outerCtx, outerProject)), true);
  }
  await Promise.all([p1.close(), p2.close(), p3.close()]);
  const seen = new Map();
  for (const b of batches) {
    const project = b.params.project_id;
    const want = { pa: A, pb: B, pc: C, pd: { ...A, projectId: 'pd' } }[project];
    assert.ok(want, `a batch of project ${project}`);
    assert.equal(b.params.revision, want.revision);
    assert.equal(b.url.includes('eu.'), want.region === 'EU');
    for (const v of b.params.visitors) seen.set(v.visitor_id, project);
  }
  assert.deepEqual(seen, expected);
});

test('listeners get each LogEvent once; removeOnEventDispatch unsubscribes; a throwing listener is isolated', async () => {
  const heard = [];
  const p = new BatchEventProcessor({ batchSize: 1, endpoint: collector.url });
  p.onEventDispatch(() => {
    throw new Error('listener bug');
  });
  const id = p.onEventDispatch((e) => heard.push(e));
  assert.equal(typeof id, 'number');
  p.process(impression());
  await p.flush();
  assert.equal(heard.length, 1);
  const e = heard[0];
  assert.equal(e.url, collector.url);
  assert.equal(e.httpVerb, 'POST');
  assert.deepEqual(e.headers, { 'Content-Type': 'application/json' });
  assert.deepEqual(e.params, JSON.parse(e.body));
  assert.equal(p.removeOnEventDispatch(id), true);
  assert.equal(p.removeOnEventDispatch(id), false);
  p.process(impression());
  await p.flush();
  assert.equal(heard.length, 1);
  assert.equal(p.stats().dispatched, 2);
  await p.close();
});

test('a custom dispatcher replaces fetch; its results count as delivered or failed', async () => {
  const calls = [];
  const answers = [{ statusCode: 200 }, { statusCode: 503 }, true, false, undefined];
  const p = new BatchEventProcessor({
    batchSize: 1,
    retry: false,
    dispatcher: async (logEvent) => {
      calls.push(logEvent);
      const a = answers[calls.length - 1];
      if (calls.length === 6) throw new Error('network down');
      return a;
    },
  });
  for (let i = 0; i < 6; i++) p.process(conversion());
  await p.flush();
  assert.equal(calls.length, 6);
  const s = p.stats();
  assert.equal(s.dispatched, 3);
  assert.equal(s.failed, 3);
  assert.equal(s.inFlight, 0);
  await p.close();
});

test('a dispatcher may answer synchronously, with a promise or with any thenable; one that never settles times out', async () => {
  const answers = [
    { statusCode: 200 },
    { statusCode: 500 },
    true,
    false,
    undefined,
    () => { throw new Error('sync throw'); },
    { then: (resolve) => setTimeout(() => resolve({ statusCode: 200 }), 5) }, // not a Promise
    { then: (_, reject) => reject(new Error('rejected thenable')) },
    { then() {} }, // never settles: dispatchTimeout
  ];
  let n = 0;
  const p = new BatchEventProcessor({
    batchSize: 1,
    retry: false,
    dispatchTimeout: 200,
    dispatcher: () => {
      const a = answers[n++];
      return typeof a === 'function' ? a() : a;
    },
  });
  for (let i = 0; i < answers.length; i++) p.process(conversion());
  await p.close();
  assert.equal(n, answers.length);
  const s = p.stats();
  assert.deepEqual({ dispatched: s.dispatched, failed: s.failed, inFlight: s.inFlight }, { dispatched: 4, failed: 5, inFlight: 0 });
});

test('a synchronous burst: process() never runs the dispatcher itself; every batch goes out, in order, once the caller yields', async () => {
  const batches = [];
  let inProcess = false;
  let reentered = 0;
  const p = new BatchEventProcessor({
    batchSize: 10,
    dispatcher: (logEvent) => {
      assert.equal(inProcess, false, 'the dispatcher ran inside process()');
      batches.push(logEvent.params.visitors.map((v) => v.snapshots[0].events[0].uuid));
      // A dispatcher may queue more events (e.g. a metric about the send).
      if (reentered < 2) p.process(impression({ uuid: `from-dispatcher-${reentered++}` }));
      return { statusCode: 200 };
    },
  });
  const uuids = [];
  for (let i = 0; i < 1000; i++) {
    const e = impression();
    uuids.push(e.uuid);
    inProcess = true;
    p.process(e);
    inProcess = false;
  }
  assert.equal(batches.length, 0, 'nothing is dispatched before the caller yields');
  await new Promise((r) => setImmediate(r));
  assert.equal(batches.length, 100);
  assert.deepEqual(batches.flat(), uuids, 'batches arrive in the order their events were processed');
  await p.close();
  assert.deepEqual(batches.slice(100).flat(), ['from-dispatcher-0', 'from-dispatcher-1']);
  assert.equal(p.stats().dispatched, 1002);
});

test('non-2xx answers from the collector count as failed', async () => {
  const bad = await startCollector({ status: () => 400 });
  try {
    const p = new BatchEventProcessor({ batchSize: 2, endpoint: bad.url });
    p.process(impression());
    p.process(impression());
    await p.flush();
    assert.equal(bad.requests.length, 1);
    assert.deepEqual([p.stats().failed, p.stats().dispatched], [2, 0]);
    await p.close();
  } finally {
    await bad.close();
  }
});

test('a full queue drops the new event, returns false and counts it', async () => {
  const p = new BatchEventProcessor({ batchSize: 100, maxQueueSize: 3, endpoint: collector.url });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => p.process(impression())), [true, true, true, false, false]);
  assert.equal(p.stats().dropped, 2);
  assert.equal(p.stats().queued, 3);
  await p.close();
});

test('bad options throw a TypeError naming the option and the rule', () => {
  const cases = [
    [{ batchSize: 0 }, 'batchSize must be an integer >= 1, got 0'],
    [{ batchSize: -5 }, 'batchSize must be an integer >= 1, got -5'],
    [{ batchSize: 'ten' }, 'batchSize must be an integer >= 1, got "ten"'],
    [{ flushInterval: NaN }, 'flushInterval must be a finite number > 0 (ms), got NaN'],
    [{ flushInterval: 0 }, 'flushInterval must be a finite number > 0 (ms), got 0'],
    [{ maxQueueSize: -1 }, 'maxQueueSize must be an integer >= 1, got -1'],
    [{ maxPayloadBytes: 4_000_000 }, 'maxPayloadBytes must be an integer from 1 to 3500000, got 4000000'],
    [{ endpoint: 'file:///etc/passwd' }, 'endpoint must be an http:// or https:// URL, got "file:///etc/passwd"'],
    [{ endpoint: 'not a url' }, 'endpoint must be an http:// or https:// URL, got "not a url"'],
    [{ dispatcher: 'fetch' }, 'dispatcher must be a function, got "fetch"'],
    ['fast', 'options must be an object, got "fast"'],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new BatchEventProcessor(options), (e) => e instanceof TypeError && e.message === message, message);
  }
});

test('bad events throw a TypeError naming the field, and the queue is intact', async () => {
  const bodies = [];
  const p = new BatchEventProcessor({ batchSize: 100, dispatcher: (e) => void bodies.push(e.params) });
  const good = impression();
  p.process(good);
  const cases = [
    [null, /^event must be an object/],
    ['impression', /^event must be an object/],
    [{ ...impression(), type: 'click' }, /^type must be 'impression' or 'conversion', got "click"/],
    [{ ...impression(), context: undefined }, /^context must be an object, got undefined/],
    [{ ...impression(), context: { projectId: '1' } }, /^context\.accountId must be a string, got undefined/],
    [{ ...impression(), context: { accountId: 1, projectId: '1' } }, /^context\.accountId must be a string, got 1/],
    [{ ...impression(), user: {} }, /^user\.id must be a string, got undefined/],
    [{ ...impression(), user: { id: null } }, /^user\.id must be a string, got null/],
    [{ ...impression(), timestamp: NaN }, /^timestamp must be a finite number, got NaN/],
    [{ ...impression(), timestamp: -1 }, /^timestamp must be a finite number >= 0/],
    [{ ...impression(), timestamp: '2024-01-01' }, /^timestamp must be a finite number >= 0.*got "2024-01-01"/],
    [{ ...impression(), user: { id: 'v', attributes: [{ entityId: '1', key: 'k', value: { nested: 1 } }] } }, /^user\.attributes\[0\]\.value must be a string, a finite number or a boolean/],
    [{ ...impression(), user: { id: 'v', attributes: 'plan=pro' } }, /^user\.attributes must be an array/],
    [{ ...conversion(), event: { key: 'purchase' } }, /^event\.id must be a string, got undefined/],
    [{ ...conversion(), revenue: Infinity }, /^revenue must be a finite number, got Infinity/],
    [{ ...conversion(), tags: 'x' }, /^tags must be an object, null or undefined/],
    [{ ...impression(), enabled: 'yes' }, /^enabled must be a boolean/],
    [{ ...impression(), uuid: 42 }, /^uuid must be a string, got 42/],
  ];
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  cases.push([{ ...conversion(), tags: cyclic }, /^tags must be JSON-serializable/]);
  cases.push([{ ...conversion(), tags: { big: 10n } }, /^tags must be JSON-serializable/]);
  let deep = {};
  for (let i = 0; i < 200_000; i++) deep = { d: deep };
  cases.push([{ ...conversion(), tags: deep }, /^tags must be JSON-serializable/]);
  cases.push([{ ...impression(), user: { id: 'x'.repeat(4_000_000) } }, /maxPayloadBytes/]);
  cases.push([{ ...impression(), flagKey: Symbol('f') }, /^flagKey must be a string, number or boolean, got Symbol\(f\)/]);
  cases.push([{ ...impression(), experiment: [] }, /^experiment must be an object, null or undefined/]);
  cases.push([{ ...conversion(), value: -Infinity }, /^value must be a finite number, got -Infinity/]);
  cases.push([{ ...impression(), context: { ...CONTEXT, region: 7 } }, /^context\.region must be a string/]);
  cases.push([{ ...impression(), context: { ...CONTEXT, anonymizeIP: 'yes' } }, /^context\.anonymizeIP must be a boolean/]);
  cases.push([{ ...impression(), user: { id: 'v', attributes: [null] } }, /^user\.attributes\[0\] must be an object, got null/]);
  // Attribute members: the field names their index and member, whatever the value's type.
  const attrs = (...list) => ({ ...impression(), user: { id: 'v', attributes: [{ entityId: '1', key: 'k', value: 1 }, ...list] } });
  cases.push([attrs({ entityId: '2', key: 'k', value: NaN }), /^user\.attributes\[1\]\.value must be a finite number, got NaN/]);
  cases.push([attrs({ entityId: '2', key: 'k', value: () => 1 }), /^user\.attributes\[1\]\.value must be a string, number or boolean, got a function/]);
  cases.push([attrs({ entityId: 2n, key: 'k', value: true }), /^user\.attributes\[1\]\.entityId must be a string, number or boolean, got 2/]);
  cases.push([attrs({ entityId: '2', key: true, value: 'x' }), /^user\.attributes\[1\]\.key must be a string, got true/]);
  cases.push([{ ...conversion(), event: 'purchase' }, /^event must be an object, got "purchase"/]);
  cases.push([{ ...impression(), variation: 'on' }, /^variation must be an object, null or undefined, got "on"/]);
  for (const [event, message] of cases) {
    assert.throws(() => p.process(event), (e) => e instanceof TypeError && message.test(e.message), String(message));
  }
  assert.ok(cases.length >= 30, `${cases.length} cases`);
  assert.equal(p.stats().queued, 1);
  await p.flush();
  assert.equal(bodies.length, 1);
  assert.equal(bodies[0].visitors[0].snapshots[0].events[0].uuid, good.uuid);
  await p.close();
});

test('prototype-pollution keys and null-prototype objects are plain data', async () => {
  const bodies = [];
  const p = new BatchEventProcessor({ dispatcher: (e) => void bodies.push(e.body) });
  const hostile = JSON.parse(JSON.stringify(conversion()).replace('"tags":{', '"tags":{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},'));
  const bare = Object.assign(Object.create(null), impression());
  bare.context = Object.assign(Object.create(null), CONTEXT);
  assert.equal(p.process(hostile), true);
  assert.equal(p.process(bare), true);
  await p.close();
  assert.equal({}.polluted, undefined);
  assert.equal(Object.prototype.polluted, undefined);
  const tags = JSON.parse(bodies[0]).visitors[0].snapshots[0].events[0].tags;
  assert.deepEqual(Object.keys(tags).slice(0, 2), ['__proto__', 'constructor']);
});

test('tags and strings are written as JSON.stringify writes them, getters and toJSON run once each in its order', async () => {
  // The packer writes tags itself (not through JSON.stringify): every kind of value it
  // must treat as JSON.stringify does, and a log of the user code it runs.
  const make = (log) => {
    class Money {
      constructor(n) {
        this.n = n;
      }
      toJSON(key) {
        log.push(`toJSON ${key}`);
        return { cents: this.n * 100 };
      }
    }
    const tags = {
      get first() {
        log.push('get first');
        return 'é\u2028\ud800"\\\u0001\t😀';
      },
      10: 'ten',
      2: -0,
      nan: NaN,
      big: 1e21,
      small: 1e-7,
      skipped: undefined,
      fn() {},
      sym: Symbol('s'),
      list: [undefined, () => 1, Symbol('t'), null, 1.5, [], {}, new Money(2)],
      date: new Date(0),
      boxed: [new Number(3), new String('ab'), new Boolean(false)],
      nested: { deep: { get last() { log.push('get last'); return [true, false]; } } },
      money: new Money(1),
      map: new Map([[1, 2]]),
    };
    tags[' \u007f'] = 'del';
    return tags;
  };
  const expectedLog = [];
  const expected = JSON.stringify(make(expectedLog));
  const log = [];
  const bodies = [];
  const p = new BatchEventProcessor({ dispatcher: (e) => void bodies.push(e.body) });
  assert.equal(p.process(conversion({ tags: make(log), user: { id: 'ü\ud83d\u0000"', attributes: [{ entityId: '1', key: '\udc00', value: '\n' }] } })), true);
  await p.close();
  assert.deepEqual(log, expectedLog);
  assert.ok(bodies[0].includes(`"tags":${expected}`), bodies[0]);
  assert.ok(bodies[0].includes(`"visitor_id":${JSON.stringify('ü\ud83d\u0000"')}`));
  assert.ok(bodies[0].includes(`"key":${JSON.stringify('\udc00')},"type":"custom","value":"\\n"`));
  // What JSON.stringify of the tags throws is what the TypeError says.
  const q = new BatchEventProcessor({ dispatcher: () => {} });
  const cyclic = { a: [1] };
  cyclic.a.push({ back: cyclic });
  let message;
  try {
    JSON.stringify(cyclic);
  } catch (e) {
    message = e.message;
  }
  assert.throws(() => q.process(conversion({ tags: cyclic })), (e) => e instanceof TypeError && e.message.includes(JSON.stringify(message)));
  assert.throws(() => q.process(conversion({ tags: { n: Object(1n) } })), /got "Do not know how to serialize a BigInt"/);
  await q.close();
});

test('an event too large for maxPayloadBytes is refused; large batches are split under the limit', async () => {
  const bodies = [];
  const p = new BatchEventProcessor({ batchSize: 1000, maxPayloadBytes: 20_000, dispatcher: (e) => void bodies.push(e.body) });
  assert.throws(() => p.process(conversion({ tags: { note: 'x'.repeat(30_000) } })), (e) => e instanceof TypeError && /maxPayloadBytes/.test(e.message));
  for (let i = 0; i < 60; i++) p.process(conversion({ tags: { note: 'ü'.repeat(500) } }));
  await p.flush();
  assert.ok(bodies.length > 1);
  for (const b of bodies) assert.ok(Buffer.byteLength(b) <= 20_000, `${Buffer.byteLength(b)} bytes`);
  assert.equal(bodies.reduce((n, b) => n + JSON.parse(b).visitors.length, 0), 60);
  await p.close();
});

test('uuid and timestamp are filled in when omitted', async () => {
  const bodies = [];
  const p = new BatchEventProcessor({ dispatcher: (e) => void bodies.push(e.params) });
  const before = Date.now();
  const e = impression();
  delete e.uuid;
  delete e.timestamp;
  p.process(e);
  await p.close();
  const ev = bodies[0].visitors[0].snapshots[0].events[0];
  assert.match(ev.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(ev.timestamp >= before && ev.timestamp <= Date.now());
});

test('numbers are written exactly as JSON.stringify writes them', async () => {
  const values = [0, -0, 7, 99_999_999, 100_000_000, 100_000_001, 1_700_000_000_123, 123_456_789_012_345, 1e15, 2 ** 53, 1.5, -3, 1e21, 5e-7, -123.25];
  const bodies = [];
  const p = new BatchEventProcessor({ batchSize: 1000, dispatcher: (e) => void bodies.push(e.body) });
  for (const v of values) {
    p.process(conversion({ timestamp: Math.abs(v), revenue: v, user: { id: 'n', attributes: [{ entityId: '1', key: 'k', value: v }] } }));
  }
  await p.close();
  const visitors = bodies.flatMap((b) => JSON.parse(b).visitors);
  assert.equal(visitors.length, values.length);
  values.forEach((v, i) => {
    const text = JSON.stringify(visitors[i]);
    assert.ok(text.includes(`"value":${JSON.stringify(v)}}`), `attribute ${v}: ${text}`);
    assert.ok(text.includes(`"revenue":${JSON.stringify(v)}`), `revenue ${v}`);
    assert.ok(text.includes(`"timestamp":${JSON.stringify(Math.abs(v))},`), `timestamp ${Math.abs(v)}`);
  });
});

test('a getter that calls process() while its own event is being read queues both events', async () => {
  const bodies = [];
  const p = new BatchEventProcessor({ batchSize: 1000, dispatcher: (e) => void bodies.push(e.params) });
  const inner = impression({ user: { id: 'inner' } });
  const outer = impression();
  Object.defineProperty(outer, 'ruleKey', {
    get() {
      // A large event: the scratch buffer of the inner call grows wasm memory.
      p.process({ ...inner, tags: undefined, flagKey: 'f'.repeat(200_000) });
      return 'exp';
    },
  });
  assert.equal(p.process(outer), true);
  await p.close();
  const ids = bodies.flatMap((b) => b.visitors.map((v) => v.visitor_id));
  assert.ok(ids.includes('inner'), 'the inner event was queued');
  assert.ok(ids.includes(outer.user.id), 'the outer event was queued');
  assert.equal(p.stats().dispatched, ids.length);
});

test('flushWith(ctx) hands a capped, never-rejecting flush to ctx.waitUntil and survives a throwing waitUntil', async () => {
  const from = collector.requests.length;
  const p = new BatchEventProcessor({ endpoint: collector.url });
  const handed = [];
  p.process(impression());
  const r = p.flushWith({ waitUntil: (promise) => handed.push(promise) });
  assert.equal(handed.length, 1);
  assert.equal(handed[0], r);
  await r;
  assert.equal(sent(from).length, 1);
  p.process(impression());
  await p.flushWith({
    waitUntil() {
      throw new Error('waitUntil outside a request');
    },
  });
  assert.equal(sent(from).length, 2);
  await p.flushWith({}); // no waitUntil at all
  await p.close();
});

test('the waitUntil option receives the promise of every send', async () => {
  const promises = [];
  const p = new BatchEventProcessor({ batchSize: 2, endpoint: collector.url, waitUntil: (x) => promises.push(x) });
  for (let i = 0; i < 6; i++) p.process(impression());
  assert.equal(promises.length, 3);
  await Promise.all(promises);
  assert.equal(p.stats().dispatched, 6);
  const q = new BatchEventProcessor({ batchSize: 1, endpoint: collector.url, waitUntil: () => { throw new Error('no request'); } });
  q.process(impression());
  await q.close();
  assert.equal(q.stats().dispatched, 1);
  await p.close();
});

test('close({ timeout }) bounds the wait: a collector that is down leaves events pending, and never a hang', async () => {
  const down = await startCollector({ status: () => 503 });
  try {
    const p = new BatchEventProcessor({ endpoint: down.url, retry: { maxRetries: 1000, initialBackoff: 20, maxBackoff: 50 } });
    assert.throws(() => p.close({ timeout: 'soon' }), (e) => e instanceof TypeError && /timeout/.test(e.message));
    for (let i = 0; i < 5; i++) p.process(impression());
    const started = Date.now();
    const summary = await p.close({ timeout: 300 });
    assert.ok(Date.now() - started < 2000, 'resolved by its deadline');
    assert.deepEqual(summary, { dispatched: 0, failed: 0, pending: 5 });
    assert.ok(down.requests.length >= 2, 'it kept retrying until the deadline');
  } finally {
    await down.close();
  }
});
