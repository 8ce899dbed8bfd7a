// Sending and time (issue 15 items 5-10), in Node 20 against the real collector on
// 127.0.0.1: redirects are not followed, Retry-After is bounded, deadlines run on the
// monotonic clock, timers never overflow, response bodies are never left open, and
// close() lets Node exit. Every test checks accepted = dispatched + failed + queued +
// inFlight.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startFaultyCollector } from '../support/faulty-collector.mjs';
import { plainImpression } from '../support/events.mjs';
import { BatchEventProcessor } from '../../target/consumer/esm.mjs';

const ESM = fileURLToPath(new URL('../../target/consumer/esm.mjs', import.meta.url));
const realSetTimeout = globalThis.setTimeout;
const sleep = (ms) => new Promise((resolve) => realSetTimeout(resolve, ms));

const collectors = [];
after(() => Promise.all(collectors.map((c) => c.close())));
async function collector(opts) {
  const c = await startFaultyCollector(opts);
  collectors.push(c);
  return c;
}

let seq = 0;
function impression(overrides = {}) {
  seq += 1;
  return plainImpression(seq, { uuid: `delivery-${seq}`, ...overrides });
}

/** accepted = dispatched + failed + queued + inFlight */
function assertAccounted(p, accepted) {
  const s = p.stats();
  assert.equal(s.dispatched + s.failed + s.queued + s.inFlight, accepted, `accounting: ${JSON.stringify(s)}`);
  return s;
}

test('redirects are not followed: a 3xx gives the batch up at once, with a message that says so', async () => {
  let status = 301;
  const c = await collector({ redirectTo: '/v1/elsewhere', pick: (r) => (r.url === '/v1/events' ? String(status) : 'ok') });
  for (status of [301, 302, 303, 307, 308]) {
    const from = c.requests.length;
    const errors = [];
    const p = new BatchEventProcessor({ endpoint: c.url, batchSize: 2, retry: { maxRetries: 3, initialBackoff: 10, maxBackoff: 10 } });
    p.onDispatchError((e) => errors.push(e));
    assert.equal(p.process(impression()), true);
    assert.equal(p.process(impression()), true);
    const summary = await p.close({ timeout: 2000 });
    const reqs = c.requests.slice(from);
    // fetch would have followed with a GET without the body (301-303) or re-POSTed (307/308).
    assert.deepEqual(reqs.map((r) => `${r.method} ${r.url}`), ['POST /v1/events'], `HTTP ${status}`);
    assert.deepEqual(summary, { dispatched: 0, failed: 2, pending: 0 }, `HTTP ${status}`);
    assert.equal(errors.length, 1, `HTTP ${status}`);
    assert.equal(errors[0].status, status);
    assert.equal(errors[0].reason, 'rejected');
    assert.match(errors[0].message, new RegExp(`HTTP ${status}: the endpoint redirected it, and redirects are not followed`));
    assertAccounted(p, 2);
  }
});

test('Retry-After: 0 or a past date never re-sends at once, and counts toward giving up', async () => {
  // Before: retry:false and maxRetries:0 were ignored and every answer re-sent at once
  // (8 809 requests in 3 s for one batch).
  const cases = [
    { kind: '429', retry: false, requests: 1 },
    { kind: '429', retry: { maxRetries: 0 }, requests: 1 },
    { kind: '429', retry: { maxRetries: 2, initialBackoff: 20, maxBackoff: 50 }, requests: 3 },
    { kind: '503-date', retry: { maxRetries: 2, initialBackoff: 20, maxBackoff: 50 }, requests: 3 },
  ];
  for (const { kind, retry, requests } of cases) {
    const c = await collector({ retryAfter: 0, retryAfterDate: -60 });
    c.setMode(kind);
    const errors = [];
    const p = new BatchEventProcessor({ endpoint: c.url, batchSize: 1, retry });
    p.onDispatchError((e) => errors.push(e));
    assert.equal(p.process(impression()), true);
    const summary = await p.close({ timeout: 3000 });
    const label = `${kind} retry ${JSON.stringify(retry)}`;
    assert.equal(c.requests.length, requests, label);
    assert.deepEqual(summary, { dispatched: 0, failed: 1, pending: 0 }, label);
    assert.equal(errors.length, 1, label);
    assert.equal(errors[0].status, kind === '429' ? 429 : 503, label);
    assertAccounted(p, 1);
  }
});

test('the wall clock set back 1 h does not hold an event back: flushInterval 500 still sends it', async () => {
  const c = await collector();
  const p = new BatchEventProcessor({ endpoint: c.url, flushInterval: 500, batchSize: 100 });
  const realNow = Date.now;
  try {
    assert.equal(p.process(impression()), true);
    Date.now = () => realNow() - 3_600_000;
    // An event without a timestamp gets the (wall-clock) Date.now() of process().
    const before = Date.now();
    const e = impression();
    delete e.timestamp;
    assert.equal(p.process(e), true);
    const afterProcess = Date.now();
    await c.until(() => c.delivered().length === 2, 5000);
    const ts = c.requests.flatMap((r) => r.json.visitors.map((v) => v.snapshots[0].events[0].timestamp));
    assert.ok(ts[1] >= before && ts[1] <= afterProcess, `timestamp ${ts[1]} from Date.now()`);
  } finally {
    Date.now = realNow;
  }
  assertAccounted(p, 2);
  await p.close();
});

test('the wall clock set forward 1 h does not make a send in progress look lost: no second copy', async () => {
  const c = await collector({ slowMs: 1000, script: ['slow'] });
  const p = new BatchEventProcessor({ endpoint: c.url, batchSize: 1, dispatchTimeout: 5000 });
  const realNow = Date.now;
  try {
    assert.equal(p.process(impression()), true);
    await c.until(() => c.requests.length === 1);
    Date.now = () => realNow() + 3_600_000;
    // Any later call runs the processor's overdue checks.
    assert.equal(p.process(impression()), true);
    await p.flush();
    await c.until(() => c.delivered().length === 2, 5000);
    await sleep(600); // a retry would come within its first backoff (<= 500 ms)
  } finally {
    Date.now = realNow;
  }
  assert.equal(c.requests.length, 2);
  assert.deepEqual([...c.deliveredCounts().values()], [1, 1]);
  const s = assertAccounted(p, 2);
  assert.equal(s.retried, 0);
  await p.close();
});

test('a flushInterval above 2^31-1 ms is refused or waits: never a 1 ms timer loop', async () => {
  const c = await collector();
  let p;
  try {
    p = new BatchEventProcessor({ endpoint: c.url, flushInterval: 2 ** 31 + 1000 });
  } catch (e) {
    // Bounded by validation instead: fine, as long as it names the option.
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /flushInterval/);
    return;
  }
  let timers = 0;
  globalThis.setTimeout = (...args) => {
    timers += 1;
    return realSetTimeout(...args);
  };
  try {
    assert.equal(p.process(impression()), true);
    await sleep(300);
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  assert.ok(timers <= 3, `${timers} timers set in 300 ms`);
  assert.equal(c.requests.length, 0);
  await p.close();
  assert.equal(c.delivered().length, 1);
  assertAccounted(p, 1);
});

test('response bodies are cancelled: a talkative collector is left with no half-written answer after close()', async () => {
  // Bodies far larger than the socket buffers: an unread one is never written out.
  const c = await collector({ responseBytes: 16 * 1024 * 1024 });
  const p = new BatchEventProcessor({ endpoint: c.url, batchSize: 1 });
  for (let i = 0; i < 20; i++) assert.equal(p.process(impression()), true);
  const summary = await p.close();
  assert.deepEqual(summary, { dispatched: 20, failed: 0, pending: 0 });
  assertAccounted(p, 20);
  await c.until(() => c.unfinishedResponses() === 0, 3000);
});

/** Runs `code` in a child Node process; resolves with its exit time and output. */
function runChild(code, args) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', code, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const kill = realSetTimeout(() => child.kill('SIGKILL'), 20000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal, ms: performance.now() - started, out, err });
    });
  });
}

const CHILD = `
import { BatchEventProcessor } from ${JSON.stringify(ESM)};
const [endpoint, kind] = process.argv.slice(1);
const options = { endpoint, batchSize: 1, dispatchTimeout: 60000 };
if (kind === 'dispatcher') options.dispatcher = () => new Promise(() => {});
if (kind === 'fetch-dispatcher') {
  options.dispatcher = (logEvent, { signal }) =>
    fetch(endpoint, { method: 'POST', body: logEvent.body, signal }).then((r) => ({ statusCode: r.status }));
}
const p = new BatchEventProcessor(options);
p.process(${JSON.stringify(impression())});
const summary = await p.close({ timeout: 500 });
console.log(JSON.stringify({ summary, stats: p.stats() }));
`;

test('close({ timeout: 500 }) with a stalled collector: Node exits soon after, the stalled batch counted pending', async () => {
  const c = await collector();
  c.setMode('stall');
  for (const kind of ['fetch', 'dispatcher', 'fetch-dispatcher']) {
    const r = await runChild(CHILD, [c.url, kind]);
    assert.equal(r.code, 0, `${kind}: ${r.err}`);
    // dispatchTimeout is 60 s: only an abort at close()'s deadline lets it exit this soon.
    assert.ok(r.ms < 10000, `${kind}: exited after ${Math.round(r.ms)} ms`);
    const { summary, stats } = JSON.parse(r.out);
    assert.deepEqual(summary, { dispatched: 0, failed: 0, pending: 1 }, kind);
    assert.equal(stats.dispatched + stats.failed + stats.queued + stats.inFlight, 1, `${kind}: ${JSON.stringify(stats)}`);
  }
  assert.equal(c.requests.length, 2); // the never-settling dispatcher never reaches the collector
  await c.until(() => c.stalledOpen() === 0, 2000);
});

test('a flush() waiting on a stalled send resolves when close() reaches its deadline', async () => {
  const c = await collector();
  c.setMode('stall');
  const p = new BatchEventProcessor({ endpoint: c.url, batchSize: 1, dispatchTimeout: 60000 });
  assert.equal(p.process(impression()), true);
  const flushed = p.flush();
  await c.until(() => c.requests.length === 1);
  const summary = await p.close({ timeout: 300 });
  assert.deepEqual(summary, { dispatched: 0, failed: 0, pending: 1 });
  // Before: the flush waited for the dispatchTimeout (60 s).
  const settled = await Promise.race([flushed.then(() => 'flushed'), sleep(2000).then(() => 'still waiting')]);
  assert.equal(settled, 'flushed');
  assertAccounted(p, 1);
});

test('a custom dispatcher gets an AbortSignal that aborts at dispatchTimeout', async () => {
  const c = await collector();
  c.setMode('stall');
  const signals = [];
  const p = new BatchEventProcessor({
    endpoint: c.url,
    batchSize: 1,
    dispatchTimeout: 300,
    retry: false,
    dispatcher: (logEvent, { signal }) => {
      signals.push(signal);
      return fetch(c.url, { method: 'POST', body: logEvent.body, signal }).then((r) => ({ statusCode: r.status }));
    },
  });
  assert.equal(p.process(impression()), true);
  await p.flush();
  assert.equal(signals.length, 1);
  assert.ok(signals[0] instanceof AbortSignal);
  assert.equal(signals[0].aborted, true);
  // The dispatcher's own request was cut off with it.
  await c.until(() => c.stalledOpen() === 0, 2000);
  assert.deepEqual(await p.close(), { dispatched: 0, failed: 1, pending: 0 });
  assertAccounted(p, 1);
});

test('a dispatcher that reads its signal only after the timeout or close() gets it aborted', async () => {
  // The AbortController behind `signal` is made on first read: a late read must still
  // see what happened before it, and a signal read before the abort must see it too.
  const flags = [];
  const p = new BatchEventProcessor({
    batchSize: 1,
    dispatchTimeout: 200,
    retry: false,
    dispatcher: (logEvent, f) => {
      flags.push(f);
      return new Promise(() => {});
    },
  });
  assert.equal(p.process(impression()), true);
  await p.flush();
  assert.equal(flags.length, 1);
  assert.equal(flags[0].pageHidden, false);
  assert.deepEqual(Object.keys(flags[0]), ['pageHidden', 'signal']);
  const late = flags[0].signal;
  assert.ok(late instanceof AbortSignal);
  assert.equal(late.aborted, true);
  assert.equal(flags[0].signal, late, 'the same signal on every read');
  // Cut off at close()'s deadline: one read before, one after.
  const q = new BatchEventProcessor({ batchSize: 1, dispatchTimeout: 60000, dispatcher: (logEvent, f) => {
    flags.push(f);
    return new Promise(() => {});
  } });
  assert.equal(q.process(impression()), true);
  await sleep(20);
  assert.equal(flags.length, 2);
  const early = flags[1].signal;
  assert.equal(early.aborted, false);
  assert.deepEqual(await q.close({ timeout: 100 }), { dispatched: 0, failed: 0, pending: 1 });
  assert.equal(early.aborted, true);
  assert.equal(flags[1].signal.aborted, true);
  await p.close();
});
