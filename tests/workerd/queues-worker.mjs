// A Worker that is both the producer (its fetch handler batches events into a Queue
// with queueDispatcher) and the consumer (its queue handler merges them with
// handleQueueBatch and POSTs to ENDPOINT?via=queue), as in www/worker/.
//
// Routes (POST, JSON body; answers JSON):
//   /          { events }  a module-scope processor (batchSize 10) -> the Queue, flushWith(ctx)
//   /queue     { events, readBody? }  a processor of its own -> the Queue (with a listener
//              that reads logEvent.body if readBody); closes it and answers
//              { closed, messages: [body bytes of each message], sendBatches, bodyDecodes }
//   /direct    { events }  a processor of its own with the default fetch dispatcher,
//              POSTing to ENDPOINT?via=direct; closes it and answers { closed }
//   /legacy    { legacy: [text], current: [text] }  one sendBatch of `{ url, body: text }`
//              JSON messages (what versions before bytes sent) and `{ url, bytes }` ones
//   /bad       sends three messages that are not batches
//   /dlq       (GET) what the dead-letter queue consumer received
// bodyDecodes counts, over the whole isolate, every TextDecoder decode that produced any
// part of a batch body (wasm-bindgen decodes its own small strings with TextDecoder too).
import { BatchEventProcessor, queueDispatcher, handleQueueBatch } from 'batch-event-processor';

let bodyDecodes = 0;
const decode = TextDecoder.prototype.decode;
TextDecoder.prototype.decode = function (...args) {
  const text = decode.apply(this, args);
  if (text.includes('"visitors":[') || text.includes('"snapshots":[')) bodyDecodes++;
  return text;
};

let processor;
const deadLetters = [];

/** The Queue binding, recording the body size of every message sent through it. */
function recording(queue, record) {
  return {
    sendBatch(messages) {
      record.sendBatches++;
      for (const m of messages) record.messages.push({ contentType: m.contentType, bytes: m.body.bytes.length });
      return queue.sendBatch(messages);
    },
  };
}

export default {
  async fetch(request, env, ctx) {
    const route = new URL(request.url).pathname;
    if (route === '/dlq') return Response.json({ deadLetters, bodyDecodes });
    if (route === '/bad') {
      await env.EVENTS.sendBatch([
        { body: { hello: 'world' }, contentType: 'json' },
        { body: { url: env.ENDPOINT, bytes: new TextEncoder().encode('{"not":"a batch"}') }, contentType: 'v8' },
        { body: 'plain text', contentType: 'text' },
      ]);
      return Response.json({ sent: 3 });
    }
    const input = await request.json();
    if (route === '/legacy') {
      const url = env.ENDPOINT;
      await env.EVENTS.sendBatch([
        ...input.legacy.map((body) => ({ body: { url, body }, contentType: 'json' })),
        ...input.current.map((text) => ({ body: { url, bytes: new TextEncoder().encode(text) }, contentType: 'v8' })),
      ]);
      return Response.json({ sent: input.legacy.length + input.current.length });
    }
    if (route === '/queue') {
      const record = { messages: [], sendBatches: 0 };
      const before = bodyDecodes;
      const p = new BatchEventProcessor({ batchSize: 1000, dispatcher: queueDispatcher(recording(env.EVENTS, record)) });
      if (input.readBody) p.onEventDispatch((logEvent) => void logEvent.body);
      for (const e of input.events) p.process(e);
      const closed = await p.close();
      return Response.json({ closed, ...record, bodyDecodes: bodyDecodes - before });
    }
    if (route === '/direct') {
      const p = new BatchEventProcessor({ batchSize: 1000, endpoint: `${env.ENDPOINT}?via=direct` });
      for (const e of input.events) p.process(e);
      return Response.json({ closed: await p.close() });
    }
    processor ??= new BatchEventProcessor({ batchSize: 10, dispatcher: queueDispatcher(env.EVENTS) });
    for (const e of input.events) processor.process(e);
    processor.flushWith(ctx);
    return Response.json(processor.stats());
  },
  async queue(batch, env) {
    if (batch.queue === 'events-dlq') {
      for (const m of batch.messages) {
        const b = m.body;
        deadLetters.push(typeof b === 'string' ? b : Object.keys(b).sort().join(','));
        m.ack();
      }
      return;
    }
    await handleQueueBatch(batch, { endpoint: `${env.ENDPOINT}?via=queue`, retryDelay: 0, timeout: 2000 });
  },
};
