// A Worker that is both the producer (its fetch handler batches events into a Queue
// with queueDispatcher) and the consumer (its queue handler merges them with
// handleQueueBatch and POSTs to ENDPOINT), as in www/worker/.
import { BatchEventProcessor, queueDispatcher, handleQueueBatch } from 'batch-event-processor';

let processor;

export default {
  async fetch(request, env, ctx) {
    processor ??= new BatchEventProcessor({ batchSize: 10, dispatcher: queueDispatcher(env.EVENTS) });
    const { events } = await request.json();
    for (const e of events) processor.process(e);
    processor.flushWith(ctx);
    return Response.json(processor.stats());
  },
  async queue(batch, env) {
    await handleQueueBatch(batch, { endpoint: env.ENDPOINT, retryDelay: 0, timeout: 2000 });
  },
};
