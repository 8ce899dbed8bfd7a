// A module Worker running the Optimizely JavaScript SDK 6 (its `universal` build) with
// `createForwardingEventProcessor(p.asEventDispatcher())` in front of the packed
// batch-event-processor, inside workerd (see sdk-adapter.test.mjs, which bundles this
// file with esbuild and loads it into Miniflare).
//
// Routes (all POST, JSON body { prefix, users, batchSize? }; answers JSON):
//   /run?mode=request|shared
//       runs the shared user flow (tests/support/datafile.mjs) for `users` users named
//       `${prefix}-${i}`: decide the flag, track the event; then flushes our processor
//       under ctx.waitUntil(p.flush()).
//       mode=request: a new SDK client and processor for this request (client closed
//                     at the end: that must not close our processor);
//       mode=shared:  one SDK client and one processor at module scope for all requests.
//       Answers { produced, forwarded: [{ uuid, visitor, header }], results, stats,
//       sdkRequests }: what the SDK handed to dispatchEvent (visitor / header as JSON
//       text), what each dispatchEvent settled with, our counters, and how many HTTP
//       requests the SDK itself made (none expected: static datafile, no ODP).
//   /stats?mode=shared  the module-scope processor's counters.
//   /flushed            per /run prefix: 'pending' until that request's p.flush() settled
//                       (as seen from a continuation in that request), then 'settled'.
//   /reference          the same flow through the SDK's own
//       createBatchEventProcessor({ eventDispatcher, batchSize }), whose dispatcher POSTs
//       JSON.stringify(logEvent.params) to env.REF_ENDPOINT; the SDK client is closed
//       (which flushes it) under ctx.waitUntil.
// env.ENDPOINT is the collector our processor POSTs to.
import { BatchEventProcessor } from 'batch-event-processor';
import * as optimizely from '@optimizely/optimizely-sdk/universal';
import { datafileJSON, flowUsers, runFlow } from '../../support/datafile.mjs';

const HOUR = 3_600_000;
let sdkRequests = 0;
const flushes = new Map(); // prefix -> 'pending' | 'settled'

/** The universal build wants a RequestHandler; with a static datafile it should stay unused. */
const requestHandler = {
  makeRequest(url, headers, method, data) {
    sdkRequests++;
    const controller = new AbortController();
    const responsePromise = fetch(url, { method, headers, body: data, signal: controller.signal }).then(async (res) => ({
      statusCode: res.status,
      body: await res.text(),
      headers: Object.fromEntries(res.headers),
    }));
    return { abort: () => controller.abort(), responsePromise };
  },
};

function sdkClient(eventProcessor) {
  return optimizely.createInstance({
    projectConfigManager: optimizely.createStaticProjectConfigManager({ datafile: datafileJSON }),
    eventProcessor,
    requestHandler,
    logger: optimizely.createLogger({ level: optimizely.ERROR }),
  });
}

/**
 * Our processor, its adapter wrapped to record what the SDK forwarded (per visitor id, so
 * that concurrent requests sharing one client each see their own users), and an SDK
 * client using it.
 */
function setup(env, batchSize) {
  const p = new BatchEventProcessor({ endpoint: env.ENDPOINT, batchSize, flushInterval: HOUR });
  const adapter = p.asEventDispatcher();
  const state = { p, captures: new Map() };
  state.client = sdkClient(
    optimizely.createForwardingEventProcessor({
      dispatchEvent(logEvent) {
        const result = adapter.dispatchEvent(logEvent);
        state.captures.get(logEvent.params?.visitors?.[0]?.visitor_id)?.(logEvent, result);
        return result;
      },
    }),
  );
  return state;
}

let shared;

async function run(state, body) {
  const forwarded = [];
  const results = [];
  const users = flowUsers(body.users, body.prefix);
  const capture = (logEvent, result) => {
    const { visitors, ...header } = logEvent.params;
    forwarded.push({ uuid: visitors[0].snapshots[0].events[0].uuid, visitor: JSON.stringify(visitors[0]), header: JSON.stringify(header) });
    results.push(result.then((value) => ({ value }), (e) => ({ error: `${e?.name}: ${e?.message}` })));
  };
  for (const u of users) state.captures.set(u.id, capture);
  try {
    await state.client.onReady();
    const produced = runFlow(state.client, users);
    for (let i = 0; i < 100 && forwarded.length < produced; i++) await new Promise((r) => setTimeout(r, 1));
    return { produced, forwarded, results: await Promise.all(results) };
  } finally {
    for (const u of users) state.captures.delete(u.id);
  }
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const body = await request.json().catch(() => ({}));
    const mode = url.searchParams.get('mode') || 'request';
    try {
      if (url.pathname === '/run') {
        const batchSize = body.batchSize ?? 10;
        const state = mode === 'shared' ? (shared ??= setup(env, batchSize)) : setup(env, batchSize);
        const out = await run(state, body);
        const flushed = state.p.flush();
        flushes.set(body.prefix, 'pending');
        ctx.waitUntil(flushed.then(() => flushes.set(body.prefix, 'settled')));
        if (mode === 'request') ctx.waitUntil(state.client.close());
        return Response.json({ mode, ...out, stats: state.p.stats(), sdkRequests });
      }
      if (url.pathname === '/flushed') {
        return Response.json(Object.fromEntries(flushes));
      }
      if (url.pathname === '/stats') {
        return Response.json({ stats: shared?.p.stats() ?? null });
      }
      if (url.pathname === '/reference') {
        const statuses = [];
        const client = sdkClient(
          optimizely.createBatchEventProcessor({
            batchSize: body.batchSize ?? 10,
            flushInterval: HOUR,
            eventDispatcher: {
              async dispatchEvent(logEvent) {
                const res = await fetch(env.REF_ENDPOINT, {
                  method: logEvent.httpVerb,
                  headers: { 'content-type': 'application/json' },
                  body: JSON.stringify(logEvent.params),
                });
                await res.arrayBuffer();
                statuses.push(res.status);
                return { statusCode: res.status };
              },
            },
          }),
        );
        await client.onReady();
        const produced = runFlow(client, flowUsers(body.users, body.prefix));
        // SDK 6's batch processor queues asynchronously: let it, then close (= flush).
        await new Promise((r) => setTimeout(r, 0));
        ctx.waitUntil(client.close());
        return Response.json({ produced });
      }
      return new Response('not found', { status: 404 });
    } catch (e) {
      return Response.json({ error: { name: e?.name, message: String(e?.message ?? e), stack: e?.stack } }, { status: 500 });
    }
  },
};
