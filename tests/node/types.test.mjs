// The TypeScript declarations that ship in the package type-check a consumer that uses
// the documented API (DESIGN.md §3) under `strict`, and reject a misuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const consumer = path.join(root, 'target/consumer');
const tsc = path.join(root, 'node_modules/.bin/tsc');

const GOOD = `
import { BatchEventProcessor, queueDispatcher, handleQueueBatch, wasmMemory } from 'batch-event-processor';
import type { LogEvent, Stats, UserEvent, CloseSummary, DispatchError, BatchEventProcessorOptions, QueuedBatch, LegacyQueuedBatch } from 'batch-event-processor';

const options: BatchEventProcessorOptions = {
  batchSize: 10, flushInterval: 30000, maxQueueSize: 2000, maxQueueBytes: 8_388_608, endpoint: 'https://example.com/v1/events',
  retry: { maxRetries: 3, initialBackoff: 100, maxBackoff: 1000 }, dispatchTimeout: 5000, closeTimeout: 1000,
  dispatcher: async (logEvent: LogEvent, flags) => ({ statusCode: flags.pageHidden ? 204 : 200 }),
};
const p = new BatchEventProcessor(options);
const event: UserEvent = {
  type: 'conversion', context: { accountId: '1', projectId: '2' }, user: { id: 'v' },
  event: { id: '9', key: 'purchase' }, revenue: 100, tags: { revenue: 100 },
};
const accepted: boolean = p.process(event);
const id: number = p.onEventDispatch((e: LogEvent) => { const n: number = e.params.visitors.length; void n; });
const removed: boolean = p.removeOnEventDispatch(id);
p.onDispatchError((e: DispatchError) => { const s: number | null = e.status; void s; });
const stats: Stats = p.stats();
const n: number = stats.queued + stats.inFlight + stats.dispatched + stats.batches + stats.retried + stats.failed + stats.dropped + stats.bytesSent;
async function run(): Promise<void> {
  await p.flush();
  const summary: CloseSummary = await p.close();
  void summary.pending;
  const d = p.asEventDispatcher();
  await d.dispatchEvent({ url: 'https://logx.optimizely.com/v1/events', httpVerb: 'POST', params: { account_id: '1', project_id: '2', enrich_decisions: true, visitors: [] } });
  void p.processLogEvent;
}
const queued: QueuedBatch = { url: 'https://logx.optimizely.com/v1/events', bytes: new Uint8Array(0) };
const legacy: LegacyQueuedBatch = { url: queued.url, body: '{}' };
void queued; void legacy;
void queueDispatcher; void handleQueueBatch; void wasmMemory; void accepted; void removed; void n; void run;
`;

const BAD = `
import { BatchEventProcessor } from 'batch-event-processor';
const p = new BatchEventProcessor({ batchSize: 'ten' });
p.process({ type: 'click' });
`;

function typecheck(name, source) {
  mkdirSync(path.join(consumer, 'types'), { recursive: true });
  const file = path.join(consumer, 'types', name);
  writeFileSync(file, source);
  try {
    execFileSync(tsc, ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,dom', '--skipLibCheck', 'false', file], { cwd: consumer, encoding: 'utf8' });
    return '';
  } catch (e) {
    return e.stdout || String(e);
  }
}

test('the shipped .d.ts type-checks a consumer of the whole documented API under strict', () => {
  execFileSync(process.execPath, [path.join(root, 'tests/support/install-package.mjs')], { stdio: 'ignore' });
  assert.equal(typecheck('good.mts', GOOD), '');
});

test('the shipped .d.ts rejects a wrong option type and an unknown event type', () => {
  const out = typecheck('bad.mts', BAD);
  assert.match(out, /bad\.mts\(3,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
  assert.match(out, /"click"/);
});
