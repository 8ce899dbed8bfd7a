// Copy me: Optimizely events from a Cloudflare Worker, batched with
// batch-event-processor and fanned in through a Cloudflare Queue.
import { BatchEventProcessor, queueDispatcher, handleQueueBatch } from 'batch-event-processor';

// Safe at module scope: every request flushes what it processed under waitUntil,
// so nothing waits in memory for a later request (the isolate may be evicted).
let processor;

export default {
  async fetch(request, env, ctx) {
    if (request.method !== 'POST') return new Response('POST an Optimizely UserEvent or an array of them', { status: 405 });
    processor ??= new BatchEventProcessor({ dispatcher: queueDispatcher(env.EVENTS) });
    const body = await request.json();
    let accepted = 0;
    try {
      for (const event of Array.isArray(body) ? body : [body]) if (processor.process(event)) accepted++;
    } catch (e) {
      return Response.json({ error: e.message }, { status: e instanceof TypeError ? 400 : 500 });
    } finally {
      processor.flushWith(ctx);
    }
    return Response.json({ accepted });
  },

  // Consumer: merge up to max_batch_size queued batches per context into one POST.
  async queue(batch, env) {
    await handleQueueBatch(batch, { endpoint: env.ENDPOINT });
  },
};
