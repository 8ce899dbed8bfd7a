// Bodies stay bytes (issue 16 item 1) and big events stay out of wasm memory (issue 15
// item 3), in Node 20 against a real collector on 127.0.0.1: the default dispatcher sends
// the UTF-8 bytes Rust wrote and never decodes a body; `body` and `params` are decoded
// only when read; `bytes` is there for custom dispatchers; an event too large for
// maxPayloadBytes is refused before it is copied into wasm memory.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCollector } from '../support/collector.mjs';
import { BatchEventProcessor, wasmMemory } from '../../target/consumer/esm.mjs';

const collector = await startCollector();
after(() => collector.close());

let seq = 0;
function conversion(overrides = {}) {
  const n = ++seq;
  return {
    type: 'conversion',
    uuid: `bytes-${n}`,
    timestamp: 1700000000000 + n,
    context: { accountId: '12345', projectId: '678', revision: '9', clientName: 'node-sdk', clientVersion: '6.0.0' },
    user: { id: `visitor-${n}`, attributes: [{ entityId: '101', key: 'city', value: 'Zürich ✓' }] },
    event: { id: '55', key: 'purchase' },
    tags: { revenue: 4200, note: 'naïve – ü' },
    ...overrides,
  };
}

/** Counts the TextDecoder decodes that produce a batch body (wasm-bindgen decodes its strings with TextDecoder too). */
function countBodyDecodes() {
  const decode = TextDecoder.prototype.decode;
  const spy = { count: 0 };
  TextDecoder.prototype.decode = function (...args) {
    const text = decode.apply(this, args);
    if (text.includes('"visitors":[')) spy.count++;
    return text;
  };
  spy.restore = () => (TextDecoder.prototype.decode = decode);
  return spy;
}

/** `accepted = dispatched + failed + queued + inFlight` (dropped counted apart). */
function assertBalanced(p, accepted) {
  const s = p.stats();
  assert.equal(s.dispatched + s.failed + s.queued + s.inFlight, accepted, JSON.stringify(s));
}

test('the default dispatcher sends the bytes Rust wrote and never decodes a body', async () => {
  const from = collector.requests.length;
  const spy = countBodyDecodes();
  try {
    const p = new BatchEventProcessor({ batchSize: 10, endpoint: collector.url });
    let heard = 0;
    p.onEventDispatch(() => heard++); // a listener that does not read the body
    for (let i = 0; i < 25; i++) p.process(conversion());
    await p.close();
    assert.equal(heard, 3);
    assert.equal(spy.count, 0, 'a body was decoded into a JS string');
    assertBalanced(p, 25);
    assert.equal(p.stats().dispatched, 25);
  } finally {
    spy.restore();
  }
  const got = collector.requests.slice(from);
  assert.equal(got.length, 3);
  assert.equal(got.flatMap((r) => r.json.visitors).length, 25);
  for (const r of got) assert.equal(r.headers['content-type'], 'application/json');
});

test('body and params are decoded on first read, cached, and are exactly the bytes sent', async () => {
  const from = collector.requests.length;
  const seen = [];
  const spy = countBodyDecodes();
  try {
    const p = new BatchEventProcessor({ batchSize: 5, endpoint: collector.url });
    p.onEventDispatch((e) => {
      const body = e.body;
      assert.equal(e.body, body); // the same string, not decoded twice
      seen.push({ body, params: e.params, bytes: e.bytes });
    });
    for (let i = 0; i < 10; i++) p.process(conversion());
    await p.close();
    assert.equal(spy.count, 2, 'one decode per batch read');
  } finally {
    spy.restore();
  }
  const got = collector.requests.slice(from);
  assert.equal(got.length, 2);
  for (const [i, r] of got.entries()) {
    assert.equal(seen[i].body, r.body);
    assert.deepEqual(seen[i].params, JSON.parse(r.body));
    assert.deepEqual(Buffer.from(seen[i].bytes), Buffer.from(r.body, 'utf8'));
  }
});

test('a custom dispatcher gets the bytes: its own Uint8Array, outside wasm memory', async () => {
  const from = collector.requests.length;
  const spy = countBodyDecodes();
  const kept = [];
  try {
    const p = new BatchEventProcessor({
      batchSize: 4,
      dispatcher: async (logEvent) => {
        assert.ok(logEvent.bytes instanceof Uint8Array);
        assert.notEqual(logEvent.bytes.buffer, wasmMemory().buffer);
        kept.push(logEvent.bytes);
        const r = await fetch(collector.url, { method: 'POST', headers: logEvent.headers, body: logEvent.bytes });
        return { statusCode: r.status };
      },
    });
    for (let i = 0; i < 8; i++) p.process(conversion());
    await p.close();
    assert.equal(spy.count, 0);
    assert.equal(p.stats().dispatched, 8);
    assertBalanced(p, 8);
  } finally {
    spy.restore();
  }
  const got = collector.requests.slice(from);
  assert.equal(got.length, 2);
  // Later sends (and the wasm memory they reuse) did not change the bytes handed out.
  for (const [i, r] of got.entries()) assert.equal(Buffer.from(kept[i]).toString('utf8'), r.body);
});

test('an event too large for maxPayloadBytes is refused before it is copied into wasm memory', async () => {
  const p = new BatchEventProcessor({ batchSize: 2, endpoint: collector.url });
  assert.equal(p.process(conversion()), true);
  const before = wasmMemory().buffer.byteLength;
  const huge = conversion({ user: { id: 'x'.repeat(50 * 1024 * 1024) } });
  assert.throws(
    () => p.process(huge),
    (e) => e instanceof TypeError && /maxPayloadBytes \(3500000 bytes\)/.test(e.message),
  );
  const grown = wasmMemory().buffer.byteLength - before;
  assert.ok(grown < 4 * 1024 * 1024, `wasm memory grew by ${grown} bytes for a refused event`);
  // The queue is intact and the processor goes on.
  assert.equal(p.stats().queued, 1);
  assert.equal(p.process(conversion()), true);
  assert.deepEqual(await p.close(), { dispatched: 2, failed: 0, pending: 0 });
  assertBalanced(p, 2);
});
