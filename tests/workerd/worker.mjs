// A module Worker that runs the packed `batch-event-processor` inside workerd (see
// workerd.test.mjs, which bundles this file with esbuild and loads it into Miniflare).
//
// Routes (all POST, JSON body; answers JSON):
//   /events?mode=request|shared  { uuids, contexts, userId, batchSize?, flush? }
//       builds one Optimizely UserEvent per uuid (impression for even indexes,
//       conversion for odd ones; event i gets contexts[i % contexts.length]),
//       processes them and, unless flush === false, flushes with ctx.waitUntil.
//       mode=request: a new processor for this request;
//       mode=shared:  one processor at module scope, shared by all requests.
//   /flush?mode=shared            flushes the module-scope processor.
//   /stats?mode=shared            the module-scope processor's counters.
//   /timer?mode=request|shared   { uuids, contexts, userId, interval, keepAliveMs? }
//       processes without flushing, so only the flushInterval timer can send them;
//       keepAliveMs keeps the request alive that long (ctx.waitUntil of a sleep).
//       mode=shared uses a second module-scope processor (flushInterval = interval).
//   /raw                          { events, options? }
//       processes the given events as they are (to check validation errors).
//   /options                      { options }
//       only constructs a processor (to check option validation errors).
// Errors are answered with status 400 and { error: { name, message, isTypeError } }.
// env.ENDPOINT is the collector URL every batch is POSTed to.
import { BatchEventProcessor } from 'batch-event-processor';

let shared;
let sharedTimer;

function sharedProcessor(env, batchSize) {
  if (!shared) shared = new BatchEventProcessor({ endpoint: env.ENDPOINT, batchSize, flushInterval: 30000 });
  return shared;
}

function userEvent(i, uuid, context, userId) {
  const base = {
    uuid,
    timestamp: 1700000000000 + i,
    context,
    user: { id: userId, attributes: [{ entityId: '111', key: 'plan', value: 'pro' }] },
  };
  if (i % 2 === 0) {
    return {
      ...base,
      type: 'impression',
      layer: { id: '1001' },
      experiment: { id: '2001', key: 'exp_checkout' },
      variation: { id: '3001', key: 'treatment' },
      ruleKey: 'exp_checkout',
      flagKey: 'checkout_flow',
      ruleType: 'experiment',
      enabled: true,
    };
  }
  return {
    ...base,
    type: 'conversion',
    event: { id: '4001', key: 'purchase' },
    revenue: 4200,
    value: 42.5,
    tags: { revenue: 4200, value: 42.5, sku: 'abc' },
  };
}

function errorResponse(e) {
  return Response.json(
    { error: { name: e?.name, message: String(e?.message ?? e), isTypeError: e instanceof TypeError } },
    { status: 400 },
  );
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    let body;
    try {
      body = await request.json();
    } catch {
      body = {};
    }
    try {
      if (url.pathname === '/events') {
        const mode = url.searchParams.get('mode') || 'request';
        const batchSize = body.batchSize ?? 10;
        const p =
          mode === 'shared'
            ? sharedProcessor(env, batchSize)
            : new BatchEventProcessor({ endpoint: env.ENDPOINT, batchSize, flushInterval: 30000 });
        const contexts = body.contexts;
        const accepted = body.uuids.map((uuid, i) =>
          p.process(userEvent(i, uuid, contexts[i % contexts.length], body.userId)),
        );
        if (body.flush !== false) ctx.waitUntil(p.flush());
        return Response.json({ mode, accepted, stats: p.stats() });
      }
      if (url.pathname === '/timer') {
        const mode = url.searchParams.get('mode') || 'request';
        const options = { endpoint: env.ENDPOINT, batchSize: 100, flushInterval: body.interval };
        let p;
        if (mode === 'shared') p = sharedTimer ??= new BatchEventProcessor(options);
        // In Workers the flush timer runs only with the waitUntil option (every send is
        // then registered with the request); without it, requests flush explicitly.
        else p = new BatchEventProcessor({ ...options, waitUntil: (promise) => ctx.waitUntil(promise) });
        const contexts = body.contexts;
        const accepted = body.uuids.map((uuid, i) =>
          p.process(userEvent(i, uuid, contexts[i % contexts.length], body.userId)),
        );
        if (body.keepAliveMs) ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, body.keepAliveMs)));
        return Response.json({ mode, accepted, stats: p.stats() });
      }
      if (url.pathname === '/flush') {
        const target = url.searchParams.get('which') === 'timer' ? sharedTimer : shared;
        if (target) target.flushWith(ctx);
        return Response.json({ stats: target?.stats() ?? null });
      }
      if (url.pathname === '/stats') {
        return Response.json({ stats: shared?.stats() ?? null });
      }
      if (url.pathname === '/raw') {
        const p = new BatchEventProcessor({ endpoint: env.ENDPOINT, ...(body.options || {}) });
        const accepted = body.events.map((e) => p.process(e));
        ctx.waitUntil(p.flush());
        return Response.json({ accepted });
      }
      if (url.pathname === '/options') {
        new BatchEventProcessor(body.options);
        return Response.json({ ok: true });
      }
      return new Response('not found', { status: 404 });
    } catch (e) {
      return errorResponse(e);
    }
  },
};
