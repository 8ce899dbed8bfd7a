// The options of `new BatchEventProcessor(options)` in the packed package: every rule
// throws a TypeError naming the option and the rule (src/wasm/js/options.js holds them
// all), the issue-15 rules (maxQueueBytes, timer-sized ms, endpoints fetch can use), and
// the rules module loading without the wasm (the browser entry validates before it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BatchEventProcessor } from '../../target/consumer/esm.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const installed = path.join(root, 'target/consumer/node_modules/batch-event-processor');

function throwsTypeError(options, message) {
  assert.throws(() => new BatchEventProcessor(options), (e) => e instanceof TypeError && e.message === message, message);
}

test('every option rule throws a TypeError naming the option and the rule', () => {
  const storage = { getItem() {} };
  const cases = [
    [{ maxQueueSize: 1.5 }, 'maxQueueSize must be an integer >= 1, got 1.5'],
    [{ maxPayloadBytes: 0 }, 'maxPayloadBytes must be an integer from 1 to 3500000, got 0'],
    [{ flushInterval: Infinity }, 'flushInterval must be a finite number > 0 (ms), got Infinity'],
    [{ flushInterval: '1s' }, 'flushInterval must be a finite number > 0 (ms), got "1s"'],
    [{ retry: 3 }, 'retry must be false or an object, got 3'],
    [{ retry: [] }, 'retry must be false or an object, got an array'],
    [{ retry: { maxRetries: 1001 } }, 'retry.maxRetries must be an integer from 0 to 1000, got 1001'],
    [{ retry: { initialBackoff: -1 } }, 'retry.initialBackoff must be a number of ms from 0 to 2147483647, got -1'],
    [{ retry: { maxBackoff: 2 ** 31 } }, 'retry.maxBackoff must be a number of ms from 0 to 2147483647, got 2147483648'],
    [{ dispatchTimeout: 0 }, 'dispatchTimeout must be a number of ms from 1 to 2147483647, got 0'],
    [{ closeTimeout: 2 ** 31 }, 'closeTimeout must be a number of ms from 0 to 2147483647, got 2147483648'],
    [{ maxStorageBytes: 6e6 }, 'maxStorageBytes must be a number of bytes from 0 to 5000000, got 6000000'],
    [{ storageTtl: -1 }, 'storageTtl must be a number of ms from 0 to 2592000000, got -1'],
    [{ endpoint: 42 }, 'endpoint must be an http:// or https:// URL, got 42'],
    [{ waitUntil: {} }, 'waitUntil must be a function, got an object'],
    [{ flushOnHide: 'yes' }, 'flushOnHide must be a boolean, got "yes"'],
    [{ storage }, 'storage must be false or an object with getItem, setItem and removeItem, got an object'],
    [() => {}, 'options must be an object, got a function'],
  ];
  for (const [options, message] of cases) throwsTypeError(options, message);
});

test('maxQueueBytes must be an integer >= 1', () => {
  // Failed before: the option did not exist and any value was ignored.
  throwsTypeError({ maxQueueBytes: 0 }, 'maxQueueBytes must be an integer >= 1, got 0');
  throwsTypeError({ maxQueueBytes: 1024.5 }, 'maxQueueBytes must be an integer >= 1, got 1024.5');
  throwsTypeError({ maxQueueBytes: '8MB' }, 'maxQueueBytes must be an integer >= 1, got "8MB"');
});

test('maxQueueBytes bounds what is held: an event past the budget is dropped, returns false and is counted', async () => {
  // Failed before: the option was ignored and all five events were queued.
  const sent = [];
  const p = new BatchEventProcessor({ batchSize: 100, maxQueueBytes: 2000, storage: false, dispatcher: (e) => void sent.push(e.params) });
  const event = (i) => ({
    type: 'conversion', uuid: `u-${i}`, timestamp: 1700000000000 + i,
    context: { accountId: '1', projectId: '2' }, user: { id: 'v' },
    event: { id: '9', key: 'purchase' }, tags: { note: 'x'.repeat(600) },
  });
  const accepted = [0, 1, 2, 3, 4].map((i) => p.process(event(i)));
  const kept = accepted.filter(Boolean).length;
  assert.ok(kept >= 1 && kept < 5, `kept ${kept} of 5 ~700 B events under a 2000 B budget`);
  assert.deepEqual(accepted, accepted.map((_, i) => i < kept), 'the first ones are kept, the later ones dropped');
  const s = p.stats();
  assert.equal(s.dropped, 5 - kept);
  assert.equal(s.queued, kept);
  await p.close();
  assert.equal(sent.flatMap((b) => b.visitors).length, kept);
  const end = p.stats();
  assert.equal(end.dispatched + end.failed + end.queued + end.inFlight, kept, 'accepted = dispatched + failed + queued + inFlight');
});

test('a flushInterval longer than a timer can wait is refused, not turned into a 1 ms timer loop', async () => {
  // Failed before: 2^31 ms was accepted, and setTimeout fired it after 1 ms, again and again.
  throwsTypeError({ flushInterval: 2 ** 31 }, 'flushInterval must be at most 2147483647 (ms, the longest timer delay), got 2147483648');
  throwsTypeError({ flushInterval: 1e12 }, 'flushInterval must be at most 2147483647 (ms, the longest timer delay), got 1000000000000');
  const p = new BatchEventProcessor({ flushInterval: 2 ** 31 - 1, storage: false, dispatcher: () => true });
  await p.close();
});

test('an endpoint with credentials is refused: fetch would refuse every send', () => {
  // Failed before: accepted, then every batch failed after all its retries.
  for (const endpoint of ['http://u:p@127.0.0.1:1/v1/events', 'https://user@example.com/', 'https://:secret@example.com/']) {
    assert.throws(
      () => new BatchEventProcessor({ endpoint }),
      (e) =>
        e instanceof TypeError &&
        e.message === 'endpoint must be an http:// or https:// URL without credentials (fetch refuses user:password@), got a URL with credentials',
      endpoint,
    );
  }
  // The password is not repeated in the message (it would end up in logs).
  try {
    new BatchEventProcessor({ endpoint: 'https://u:hunter2@example.com/' });
  } catch (e) {
    assert.ok(!e.message.includes('hunter2'));
  }
});

test('close({ timeout }) is checked like an option, and a valid one is used', async () => {
  const p = new BatchEventProcessor({ storage: false, dispatcher: () => true });
  await assert.rejects(async () => p.close({ timeout: -1 }), (e) => e instanceof TypeError && e.message === 'close() options.timeout must be a number of ms from 0 to 2147483647, got -1');
  await assert.rejects(async () => p.close({ timeout: null }), /close\(\) options\.timeout must be .* got null/);
  assert.deepEqual(await p.close({ timeout: 100 }), { dispatched: 0, failed: 0, pending: 0 });
});

test('the option rules load without the wasm: no module under dist/glue/options.js (nor packer.js, storage.js) imports it', async () => {
  // The browser entry validates options before the wasm is instantiated (DESIGN §8).
  const seen = new Set();
  const walk = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g)) {
      assert.ok(spec.startsWith('.'), `${file}: imports ${spec}`);
      assert.ok(!/bep(_bg)?\.(js|wasm)$/.test(spec), `${path.relative(installed, file)} imports the wasm (${spec})`);
      walk(path.resolve(path.dirname(file), spec));
    }
  };
  walk(path.join(installed, 'dist/glue/options.js'));
  walk(path.join(installed, 'dist/glue/packer.js'));
  walk(path.join(installed, 'dist/glue/storage.js'));
  assert.ok([...seen].some((f) => f.includes('/snippets/')), 'the re-exports lead to the snippets bep.js imports');
  const { validOptions, DEFAULTS } = await import(pathToFileURL(path.join(installed, 'dist/glue/options.js')));
  assert.throws(() => validOptions({ batchSize: 0 }), /^TypeError: batchSize must be an integer >= 1, got 0$/);
  assert.equal(validOptions(undefined).maxQueueBytes, DEFAULTS.maxQueueBytes);
});
