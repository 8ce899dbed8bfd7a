// Lifetime and re-entrancy (issue 15 items 1, 2 and 4), in Node 20 against a real
// collector on 127.0.0.1: a processor that holds events stays alive until they are
// settled, whoever keeps it; free() / [Symbol.dispose]() / [Symbol.asyncDispose]() close
// and never drop the queue; listeners may (un)subscribe while they are called.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startCollector } from '../support/collector.mjs';
import { BatchEventProcessor } from '../../target/consumer/esm.mjs';

const collector = await startCollector();
after(() => collector.close());

const PACKAGE = new URL('../../target/consumer/esm.mjs', import.meta.url).href;
let seq = 0;

function impression() {
  const n = ++seq;
  return {
    type: 'impression',
    uuid: `life-${n}`,
    timestamp: 1700000000000 + n,
    context: { accountId: '12345', projectId: '678', revision: '9', clientName: 'node-sdk', clientVersion: '6.0.0', anonymizeIP: true, botFiltering: false },
    user: { id: `visitor-${n}`, attributes: [] },
    layer: { id: '1' },
    experiment: { id: '2', key: 'exp' },
    variation: { id: '3', key: 'on' },
  };
}

/** `accepted = dispatched + failed + queued + inFlight` (dropped counted apart). */
function assertBalanced(p, accepted) {
  const s = p.stats();
  assert.equal(s.dispatched + s.failed + s.queued + s.inFlight, accepted, JSON.stringify(s));
}

/** Runs `source` (an ES module) in a child `node --expose-gc`; resolves with its exit code and output. */
function runWithGc(source, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', source], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const kill = setTimeout(() => child.kill(), 30000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, out });
    });
  });
}

test('events of processors nobody keeps all arrive, through garbage collection and allocation churn', async () => {
  const prefix = `gc-${Date.now()}-`;
  // Twenty processors, each made in a function that keeps no reference (a request
  // handler), each holding one event until its flush interval; meanwhile the heap is
  // churned and collected, which used to free them (and their timers) with the event.
  const source = `
    const { BatchEventProcessor } = await import(${JSON.stringify(PACKAGE)});
    const { setTimeout: sleep } = await import('node:timers/promises');
    function handle(i) {
      new BatchEventProcessor({ endpoint: process.env.ENDPOINT, flushInterval: 1500 }).process({
        type: 'conversion', uuid: process.env.PREFIX + i, timestamp: 1700000000000,
        context: { accountId: '1', projectId: '2' }, user: { id: 'v' + i }, event: { id: '9', key: 'buy' },
      });
    }
    for (let i = 0; i < 20; i++) handle(i);
    for (let round = 0; round < 10; round++) {
      let junk = [];
      for (let j = 0; j < 20000; j++) junk.push({ j, s: 'x'.repeat(20) });
      junk = null;
      globalThis.gc();
      await sleep(20);
    }
  `;
  const { code, out } = await runWithGc(source, { ENDPOINT: collector.url, PREFIX: prefix });
  assert.equal(code, 0, out);
  // The child exits only once nothing is left to do: every event must have been sent.
  const arrived = collector.uuids().filter((u) => u.startsWith(prefix));
  assert.deepEqual(arrived.sort(), Array.from({ length: 20 }, (_, i) => prefix + i).sort());
});

test('[Symbol.dispose]() starts close() and returns; close() afterwards resolves; the queue is delivered', async () => {
  const from = collector.uuids().length;
  const p = new BatchEventProcessor({ endpoint: collector.url, flushInterval: 60000 });
  p.process(impression());
  p.process(impression());
  assert.equal(p[Symbol.dispose](), undefined);
  assert.throws(() => p.process(impression()), /closed/);
  const summary = await p.close();
  assert.deepEqual(summary, { dispatched: 2, failed: 0, pending: 0 });
  assert.equal(collector.uuids().length - from, 2);
  assertBalanced(p, 2);
  // Disposing again (a `using` block after an explicit close) is harmless.
  p[Symbol.dispose]();
  assert.deepEqual(await p.close(), summary);
});

test('free() closes like dispose: nothing queued is dropped and the processor still answers', async () => {
  const from = collector.uuids().length;
  const p = new BatchEventProcessor({ endpoint: collector.url, flushInterval: 60000 });
  p.process(impression());
  assert.equal(p.free(), undefined);
  assert.deepEqual(await p.close({ timeout: 5000 }), { dispatched: 1, failed: 0, pending: 0 });
  assert.equal(collector.uuids().length - from, 1);
  assert.equal(p.stats().dispatched, 1);
  assertBalanced(p, 1);
});

test('[Symbol.asyncDispose]() is close(): `await using` waits for delivery and gets the summary', async () => {
  const from = collector.uuids().length;
  const p = new BatchEventProcessor({ endpoint: collector.url, flushInterval: 60000 });
  p.process(impression());
  p.process(impression());
  p.process(impression());
  const summary = await p[Symbol.asyncDispose]();
  assert.deepEqual(summary, { dispatched: 3, failed: 0, pending: 0 });
  assert.equal(await p.close(), summary);
  assert.equal(collector.uuids().length - from, 3);
  assertBalanced(p, 3);
});

test('a listener may unsubscribe itself (the "once" pattern) and subscribe another while it is called', async () => {
  const p = new BatchEventProcessor({ batchSize: 1, endpoint: collector.url });
  const calls = [];
  let removed;
  const once = p.onEventDispatch(() => {
    calls.push('once');
    removed = p.removeOnEventDispatch(once);
    p.onEventDispatch(() => calls.push('later'));
  });
  // A listener removed by an earlier one before its turn is not called (as with DOM events).
  let victim;
  p.onEventDispatch(() => p.removeOnEventDispatch(victim));
  victim = p.onEventDispatch(() => calls.push('victim'));
  p.process(impression());
  await p.flush();
  assert.equal(removed, true);
  assert.deepEqual(calls, ['once']);
  p.process(impression());
  await p.flush();
  assert.deepEqual(calls, ['once', 'later']);
  assert.equal(p.removeOnEventDispatch(once), false);
  assert.equal(p.stats().dispatched, 2);
  assertBalanced(p, 2);
  await p.close();
});

test('an error listener may unsubscribe itself and the processor goes on', async () => {
  const bad = await startCollector({ status: () => 400 });
  try {
    const p = new BatchEventProcessor({ batchSize: 1, endpoint: bad.url });
    const errors = [];
    let removed;
    const id = p.onDispatchError((e) => {
      errors.push(e.status);
      removed = p.removeOnDispatchError(id);
      p.onDispatchError(() => errors.push('added'));
    });
    p.process(impression());
    await p.flush();
    p.process(impression());
    await p.flush();
    assert.equal(removed, true);
    assert.deepEqual(errors, [400, 'added']);
    assert.equal(p.stats().failed, 2);
    assertBalanced(p, 2);
    await p.close();
  } finally {
    await bad.close();
  }
});

test('a storage whose setItem calls back into the processor breaks nothing', async () => {
  const from = collector.uuids().length;
  const items = new Map();
  let p;
  let reentered = false;
  const storage = {
    getItem: (k) => items.get(k) ?? null,
    setItem(k, v) {
      items.set(k, v);
      if (!reentered && k.includes('batch:')) {
        reentered = true;
        p.process(impression()); // with waitUntil, process() pumps (and persists) at once
      }
    },
    removeItem: (k) => void items.delete(k),
    key: (i) => [...items.keys()][i] ?? null,
    get length() {
      return items.size;
    },
  };
  p = new BatchEventProcessor({ batchSize: 1, endpoint: collector.url, storage, waitUntil: () => {} });
  p.process(impression());
  assert.deepEqual(await p.close(), { dispatched: 2, failed: 0, pending: 0 });
  assert.equal(reentered, true);
  assert.equal(p.storageErrors(), 0);
  assert.equal(collector.uuids().length - from, 2);
  // Both batches were stored while unsettled and removed once delivered.
  assert.deepEqual([...items.keys()].filter((k) => k.includes('batch:')), []);
  assertBalanced(p, 2);
});
