// queueDispatcher and handleQueueBatch in Node 20, with a real processor and a fake Queue
// that structured-clones each message as Queues does for contentType 'v8': batch bodies
// go to the Queue as the bytes Rust wrote, are split by visitor on the bytes (every
// corner of the wire format, non-ASCII and escapes included), and the consumer merges
// them back into the very bytes of the batch; old `{ url, body }` JSON messages are
// still delivered, anything else is retried. The real Queues path (workerd, Miniflare)
// is tests/workerd/queues.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { edgeCaseEvents } from '../support/events.mjs';
import { BatchEventProcessor, queueDispatcher, handleQueueBatch } from '../../target/consumer/esm.mjs';

/** A Queue producer binding that checks the Queues limits and keeps structured clones of what it was sent. */
function fakeQueue() {
  const q = {
    sent: [],
    calls: 0,
    async sendBatch(group) {
      q.calls++;
      assert.ok(group.length >= 1 && group.length <= 100, `sendBatch of ${group.length} messages`);
      let total = 0;
      for (const m of group) {
        assert.equal(m.contentType, 'v8');
        // Node's v8.serialize writes a Uint8Array as its bytes and a few bytes of tag,
        // as workerd's Queues serialization does.
        const size = v8.serialize(m.body).length;
        assert.ok(size <= 128_000, `a message of ${size} bytes`);
        total += size;
        q.sent.push(structuredClone(m.body));
      }
      assert.ok(total <= 256_000, `sendBatch of ${total} bytes`);
    },
  };
  return q;
}

/** Queues consumer messages around `bodies`, recording acks and retries. */
function messages(bodies) {
  return bodies.map((body, i) => ({
    id: String(i),
    body,
    acked: 0,
    retried: 0,
    ack() {
      this.acked++;
    },
    retry() {
      this.retried++;
    },
  }));
}

/** A fetch recording each POST and answering `status`. */
function fakeFetch(status = 200) {
  const posts = [];
  const f = async (url, init) => {
    posts.push({ url, init, bytes: Buffer.from(init.body) });
    return { status };
  };
  f.posts = posts;
  return f;
}

/** Counts the TextDecoder decodes that produce any part of a batch body. */
function countBodyDecodes() {
  const decode = TextDecoder.prototype.decode;
  const spy = { count: 0 };
  TextDecoder.prototype.decode = function (...args) {
    const text = decode.apply(this, args);
    if (text.includes('"visitors":[') || text.includes('"snapshots":[')) spy.count++;
    return text;
  };
  spy.restore = () => (TextDecoder.prototype.decode = decode);
  return spy;
}

/** Runs `events` through a processor whose dispatcher is queueDispatcher(queue); returns the bytes of each batch. */
async function produce(queue, events, options = {}) {
  const batches = [];
  const p = new BatchEventProcessor({ batchSize: 2000, maxQueueSize: 5000, dispatcher: queueDispatcher(queue), ...options });
  p.onEventDispatch((logEvent) => batches.push({ url: logEvent.url, bytes: logEvent.bytes }));
  for (const e of events) p.process(e);
  const closed = await p.close();
  return { batches, closed, stats: p.stats() };
}

const tricky = (n) => ({
  type: 'conversion',
  uuid: `tricky-${n}`,
  timestamp: 1700000000000 + n,
  context: { accountId: '12345', projectId: '678', revision: '9', clientName: 'node-sdk', clientVersion: '6.0.0' },
  user: {
    id: `"},{"snapshots":[${n}]}]} \\" \\\\ é-東京-🎉`,
    attributes: [{ entityId: '1', key: '"visitors":[', value: '{[}]",\\ \u2028 Zürich ✓' }],
  },
  event: { id: '55', key: 'purchase' },
  tags: { note: `${'ü'.repeat(300)} ]} {"x":[` },
});

test('a batch under 120 KB is one message: the LogEvent bytes themselves, never decoded', async () => {
  const queue = fakeQueue();
  const spy = countBodyDecodes();
  let result;
  try {
    result = await produce(queue, Array.from({ length: 10 }, (_, i) => tricky(i)), { batchSize: 10 });
  } finally {
    spy.restore();
  }
  assert.equal(spy.count, 0, 'a body was decoded into a JS string');
  assert.deepEqual(result.closed, { dispatched: 10, failed: 0, pending: 0 });
  assert.equal(result.batches.length, 1);
  assert.equal(queue.sent.length, 1);
  const [m] = queue.sent;
  assert.deepEqual(Object.keys(m).sort(), ['bytes', 'url']);
  assert.ok(m.bytes instanceof Uint8Array);
  assert.equal(m.url, result.batches[0].url);
  assert.ok(Buffer.from(m.bytes).equals(Buffer.from(result.batches[0].bytes)));
});

test('batches over 120 KB are split by visitor on the bytes and merged back into the very same bytes', async () => {
  // Every corner of the wire format (escapes, lone surrogates, non-ASCII, several
  // contexts), repeated until each context's batch is several messages long.
  const events = [];
  for (let r = 0; r < 60; r++) {
    for (const { event } of edgeCaseEvents()) events.push({ ...event, uuid: `${event.uuid}-${r}` });
    events.push(tricky(r));
  }
  // One Queue per batch, to know which messages came from which batch (the processor
  // sends batches concurrently, so their messages interleave in a shared Queue).
  const batches = [];
  const dispatcher = async (logEvent) => {
    const queue = fakeQueue();
    const result = await queueDispatcher(queue)(logEvent);
    batches.push({ url: logEvent.url, bytes: logEvent.bytes, queue });
    return result;
  };
  const spy = countBodyDecodes();
  let closed;
  try {
    const p = new BatchEventProcessor({ batchSize: 2000, maxQueueSize: 5000, dispatcher });
    for (const e of events) p.process(e);
    closed = await p.close();
  } finally {
    spy.restore();
  }
  assert.equal(spy.count, 0, 'a body was decoded into a JS string');
  assert.deepEqual(closed, { dispatched: events.length, failed: 0, pending: 0 });
  const split = batches.filter((b) => b.queue.sent.length > 1);
  assert.ok(split.length >= 2, `${split.length} batches split`);
  assert.ok(split.some((b) => b.queue.calls > 1), 'no batch needed more than one sendBatch');
  const all = [];
  for (const b of batches) {
    let visitors = 0;
    for (const m of b.queue.sent) {
      assert.equal(m.url, b.url);
      assert.ok(m.bytes.length <= 120_000, `a message body of ${m.bytes.length} bytes`);
      visitors += JSON.parse(Buffer.from(m.bytes).toString('utf8')).visitors.length;
    }
    assert.equal(visitors, JSON.parse(Buffer.from(b.bytes).toString('utf8')).visitors.length);
    // The consumer merges a batch's messages back into its exact bytes, in one POST.
    const fetch = fakeFetch();
    const ms = messages(b.queue.sent);
    const r = await handleQueueBatch({ messages: ms }, { fetch });
    assert.deepEqual(r, { posts: 1, acked: ms.length, retried: 0 });
    assert.equal(fetch.posts[0].url, b.url);
    assert.ok(fetch.posts[0].bytes.equals(Buffer.from(b.bytes)), `batch of ${b.bytes.length} bytes came back different`);
    assert.ok(fetch.posts[0].init.body instanceof Uint8Array);
    assert.equal(fetch.posts[0].init.headers['Content-Type'], 'application/json');
    all.push(...b.queue.sent);
  }
  // All messages at once: one POST per endpoint and header (contexts that differ only
  // by region spelling or botFiltering share a header), every event exactly once.
  const headers = new Set(
    batches.map((b) => {
      const text = Buffer.from(b.bytes).toString('utf8');
      return `${b.url}\n${text.slice(0, text.indexOf('"visitors":['))}`;
    }),
  );
  const fetch = fakeFetch();
  const r = await handleQueueBatch({ messages: messages(all) }, { fetch });
  assert.deepEqual(r, { posts: headers.size, acked: all.length, retried: 0 });
  const uuids = fetch.posts.flatMap((p) =>
    JSON.parse(p.bytes.toString('utf8')).visitors.map((v) => v.snapshots[0].events[0].uuid),
  );
  assert.equal(uuids.length, events.length);
  assert.deepEqual(new Set(uuids), new Set(events.map((e) => e.uuid)));
});

test('a visitor that cannot fit a message alone is refused with 413 before anything is sent; the rest is delivered', async () => {
  const queue = fakeQueue();
  const errors = [];
  const huge = { ...tricky(1000), uuid: 'huge', tags: { note: 'x'.repeat(130_000) } };
  const events = [tricky(1001), tricky(1002), huge, tricky(1003)];
  const p = new BatchEventProcessor({ batchSize: 10, dispatcher: queueDispatcher(queue) });
  p.onDispatchError((e) => errors.push(e));
  for (const e of events) p.process(e);
  assert.deepEqual(await p.close(), { dispatched: 3, failed: 1, pending: 0 });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].status, 413);
  const uuids = queue.sent.flatMap((m) => JSON.parse(Buffer.from(m.bytes).toString('utf8')).visitors.map((v) => v.snapshots[0].events[0].uuid));
  assert.deepEqual(uuids.sort(), ['tricky-1001', 'tricky-1002', 'tricky-1003']);
});

test('a LogEvent without bytes (built by hand) is encoded and sent the same way', async () => {
  const queue = fakeQueue();
  const dispatch = queueDispatcher(queue);
  const body = '{"account_id":"1","visitors":[{"snapshots":[],"visitor_id":"ü","attributes":[]}]}';
  assert.deepEqual(await dispatch({ url: 'https://logx.optimizely.com/v1/events', body }), { statusCode: 200 });
  assert.equal(Buffer.from(queue.sent[0].bytes).toString('utf8'), body);
  assert.throws(() => queueDispatcher({}), TypeError);
});

test('a body over 120 KB that is not an EventBatch is rejected, nothing sent', async () => {
  const queue = fakeQueue();
  const dispatch = queueDispatcher(queue);
  const notBatch = new TextEncoder().encode(`{"visitors":[{"a":1}, ${'1'.repeat(130_000)}]}`);
  await assert.rejects(dispatch({ url: 'https://x.test/', bytes: notBatch }), TypeError);
  assert.equal(queue.sent.length, 0);
});

test('old { url, body } JSON messages merge with new ones; anything else is retried, never acked', async () => {
  const url = 'https://logx.optimizely.com/v1/events';
  const header = '{"client_name":"node-sdk","account_id":"1","visitors":[';
  const v = (id) => `{"snapshots":[{"events":[{"uuid":"${id}"}]}],"visitor_id":"${id}-Zürich ✓","attributes":[]}`;
  const enc = (s) => new TextEncoder().encode(s);
  const good = [
    { url, body: `${header}${v('old-1')}]}` }, // what earlier versions sent (contentType 'json')
    { url, bytes: enc(`${header}${v('new-1')},${v('new-2')}]}`) },
    { url, bytes: enc(`${header}${v('new-3')}]}`).buffer }, // an ArrayBuffer ('bytes' content type)
  ];
  const bad = [
    null,
    'text',
    { url },
    { body: `${header}${v('x')}]}` },
    { url, body: 42 },
    { url, body: 'not a batch' },
    { url, bytes: 'not bytes' },
    { url, bytes: enc('{"visitors":[]}') },
    { url, bytes: enc(`${header}${v('x')}`) },
  ];
  const fetch = fakeFetch();
  const ms = messages([...good, ...bad]);
  const r = await handleQueueBatch({ messages: ms }, { fetch });
  assert.deepEqual(r, { posts: 1, acked: good.length, retried: bad.length });
  assert.equal(fetch.posts[0].bytes.toString('utf8'), `${header}${v('old-1')},${v('new-1')},${v('new-2')},${v('new-3')}]}`);
  for (const m of ms.slice(good.length)) assert.deepEqual([m.acked, m.retried], [0, 1]);
});

test('merged batches respect maxPayloadBytes and failed POSTs retry their messages', async () => {
  const url = 'https://logx.optimizely.com/v1/events';
  const header = '{"account_id":"1","visitors":[';
  const body = (i) => new TextEncoder().encode(`${header}{"visitor_id":"v${i}","pad":"${'é'.repeat(200)}"}]}`);
  const bodies = Array.from({ length: 10 }, (_, i) => ({ url, bytes: body(i) }));
  const fetch = fakeFetch();
  const limit = 3 * body(0).length;
  const r = await handleQueueBatch({ messages: messages(bodies) }, { fetch, maxPayloadBytes: limit });
  assert.equal(r.acked, 10);
  assert.ok(r.posts >= 4, `${r.posts} POSTs`);
  let ids = [];
  for (const p of fetch.posts) {
    assert.ok(p.bytes.length <= limit, `a POST of ${p.bytes.length} bytes over ${limit}`);
    ids = ids.concat(JSON.parse(p.bytes.toString('utf8')).visitors.map((v) => v.visitor_id));
  }
  assert.deepEqual(ids, Array.from({ length: 10 }, (_, i) => `v${i}`));

  const failing = messages(bodies.slice(0, 2));
  const r500 = await handleQueueBatch({ messages: failing }, { fetch: fakeFetch(500), retryDelay: 7 });
  assert.deepEqual(r500, { posts: 1, acked: 0, retried: 2 });
  const thrown = messages(bodies.slice(0, 2));
  const rThrow = await handleQueueBatch({ messages: thrown }, { fetch: async () => { throw new Error('network'); } });
  assert.deepEqual(rThrow, { posts: 1, acked: 0, retried: 2 });
});
