// Node keeps its synchronous instantiation (issue 14): through both the ESM and the CJS
// entry, a processor works right after the import, `ready` is already resolved and
// `init()` returns it. The packed package, as installed by tests/support/install-package.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as esm from '../../target/consumer/esm.mjs';
import { startCollector } from '../support/collector.mjs';

const require = createRequire(import.meta.url);
const cjs = require('../../target/consumer/cjs.cjs');

const event = (uuid) => ({
  type: 'conversion', uuid, context: { accountId: '1', projectId: '2' },
  user: { id: 'v' }, event: { id: '9', key: 'k' },
});

/** Settles to 'resolved' if `p` is already resolved: checked before any other task runs. */
function state(p) {
  return Promise.race([p.then(() => 'resolved', () => 'rejected'), Promise.resolve().then(() => Promise.resolve()).then(() => 'pending')]);
}

for (const [name, m] of [['ESM', esm], ['CJS', cjs]]) {
  test(`${name}: ready is already resolved, init() returns it, and a processor works synchronously after the import`, async () => {
    assert.ok(m.ready instanceof Promise);
    assert.equal(await state(m.ready), 'resolved');
    assert.equal(m.init(), m.ready);
    assert.ok(m.wasmMemory() instanceof WebAssembly.Memory);
    const collector = await startCollector();
    try {
      const p = new m.BatchEventProcessor({ endpoint: collector.url, batchSize: 2 });
      assert.equal(p.process(event(`${name}-1`)), true);
      assert.equal(p.stats().queued, 1, 'queued by the wasm core at once, not by a stand-in');
      assert.throws(() => p.process({ ...event('x'), user: { id: 7 } }), { name: 'TypeError', message: 'user.id must be a string, got 7' });
      p.process(event(`${name}-2`));
      await p.close();
      assert.deepEqual(collector.uuids(), [`${name}-1`, `${name}-2`]);
    } finally {
      await collector.close();
    }
  });
}
