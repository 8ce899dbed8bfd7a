// The reference output for golden tests: the LogEvents that the Optimizely JavaScript
// SDK 6's own BatchEventProcessor builds for the same UserEvents (its dispatcher receives
// `buildLogEvent(events)`, event_processor/event_builder/log_event.js). Plain JS, so it
// runs unchanged in Node, Deno and Bun.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const HOUR = 3_600_000;

/** SDK 6's BatchEventProcessor, taken out of the opaque `createBatchEventProcessor()` wrapper. */
export function sdkProcessor(batchSize, onDispatch) {
  const sdk = require('@optimizely/optimizely-sdk');
  const opaque = sdk.createBatchEventProcessor({
    eventDispatcher: { dispatchEvent: async (logEvent) => (onDispatch(logEvent), { statusCode: 200 }) },
    batchSize,
    flushInterval: HOUR,
  });
  const [symbol] = Object.getOwnPropertySymbols(opaque);
  const processor = opaque[symbol];
  if (typeof processor?.process !== 'function') throw new Error('SDK 6 processor could not be taken out of its wrapper');
  return { opaque, processor };
}

/** The `{ url, httpVerb, params }` LogEvents SDK 6 sends for `events`, processed in order. */
export async function sdkBatches(events, batchSize) {
  const out = [];
  const { processor } = sdkProcessor(batchSize, (logEvent) => out.push(logEvent));
  processor.start();
  for (const e of events) await processor.process(e);
  await processor.flush();
  processor.stop();
  await processor.onTerminated();
  return out.map((l) => ({ url: l.url, httpVerb: l.httpVerb, params: l.params }));
}
