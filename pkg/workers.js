// Cloudflare Workers helpers: a Cloudflare Queues producer dispatcher and a consumer
// that merges queued batches into full-size Optimizely batches. Plain JS: they only
// move the bodies the processor built (no parsing of the events on the hot path).

const MESSAGE_LIMIT = 120_000; // Queues: 128 KB per message, leave room for the envelope
const SEND_BATCH_MESSAGES = 100; // Queues: sendBatch takes at most 100 messages ...
const SEND_BATCH_BYTES = 250_000; // ... and 256 KB in all
const MAX_PAYLOAD_BYTES = 3_500_000;
const VISITORS = '"visitors":[';

const bytes = (s) => new TextEncoder().encode(s).length;

/** Splits a batch body into bodies of at most `limit` bytes, by visitor. */
function splitBody(body, limit) {
  if (bytes(body) <= limit) return [body];
  const batch = JSON.parse(body);
  const header = body.slice(0, body.indexOf(VISITORS) + VISITORS.length);
  const out = [];
  let parts = [];
  let size = bytes(header) + 2;
  for (const v of batch.visitors) {
    const text = JSON.stringify(v);
    const n = bytes(text) + 1;
    if (parts.length && size + n > limit) {
      out.push(`${header}${parts.join(',')}]}`);
      parts = [];
      size = bytes(header) + 2;
    }
    parts.push(text);
    size += n;
  }
  if (parts.length) out.push(`${header}${parts.join(',')}]}`);
  return out;
}

/**
 * A dispatcher that sends each batch to a Cloudflare Queue (a producer binding such as
 * `env.EVENTS`) instead of POSTing it: `new BatchEventProcessor({ dispatcher:
 * queueDispatcher(env.EVENTS) })`. Batches over 120 KB are split by visitor into
 * several messages (Queues caps a message at 128 KB), and messages are sent with
 * `sendBatch` in groups of at most 100 messages and 250 KB. A failed send rejects, so
 * the processor retries it. Messages are `{ url, body }`: `body` is the exact
 * Optimizely EventBatch JSON, every event keeps its uuid (Queues delivers at least
 * once: let the collector deduplicate by uuid).
 */
export function queueDispatcher(queue) {
  if (!queue || typeof queue.sendBatch !== 'function') {
    throw new TypeError('queue must be a Cloudflare Queue producer binding (with sendBatch), got ' + typeof queue);
  }
  return async (logEvent) => {
    // A Queues message is JSON text, so the body is decoded here once; a body known (by
    // its byte length) to fit one message is not measured again.
    const fits = logEvent.bytes instanceof Uint8Array && logEvent.bytes.length <= MESSAGE_LIMIT;
    const messages = (fits ? [logEvent.body] : splitBody(logEvent.body, MESSAGE_LIMIT)).map((body) => ({
      body: { url: logEvent.url, body },
      contentType: 'json',
    }));
    let group = [];
    let size = 0;
    for (const m of messages) {
      const n = (fits ? logEvent.bytes.length : bytes(m.body.body)) + 200;
      if (group.length && (group.length === SEND_BATCH_MESSAGES || size + n > SEND_BATCH_BYTES)) {
        await queue.sendBatch(group);
        group = [];
        size = 0;
      }
      group.push(m);
      size += n;
    }
    if (group.length) await queue.sendBatch(group);
    return { statusCode: 200 };
  };
}

/**
 * The queue consumer: merges the messages of a Queues batch into full-size Optimizely
 * batches (one per context and endpoint, each at most `maxPayloadBytes`), POSTs them,
 * and acks each message whose batch got a 2xx; every other message is retried with
 * `retryDelay` seconds (so Queues redelivers it, and after `max_retries` moves it to
 * the dead-letter queue if one is configured). Never throws: a throwing queue handler
 * would make Queues retry the whole batch, ignoring the acks.
 *
 * `export default { async queue(batch, env) { await handleQueueBatch(batch, { endpoint: env.ENDPOINT }); } }`
 *
 * Options: `endpoint` (overrides each message's url), `maxPayloadBytes` (default
 * 3 500 000), `retryDelay` (seconds, default 30), `fetch` (default the global fetch),
 * `timeout` (ms per POST, default 10 000). Resolves with `{ posts, acked, retried }`.
 */
export async function handleQueueBatch(batch, options = {}) {
  const { endpoint, maxPayloadBytes = MAX_PAYLOAD_BYTES, retryDelay = 30, timeout = 10_000 } = options;
  const send = options.fetch || ((url, init) => fetch(url, init));
  const groups = new Map();
  let retried = 0;
  const retry = (m) => {
    retried++;
    try {
      m.retry({ delaySeconds: retryDelay });
    } catch {
      // nothing more can be done for this message
    }
  };
  for (const m of batch.messages) {
    const { url, body } = (m && m.body) || {};
    const at = typeof body === 'string' ? body.indexOf(VISITORS) : -1;
    if (at < 0 || !body.endsWith(']}') || typeof url !== 'string') {
      // Not ours or corrupted: retrying cannot help, let it go to the dead-letter queue.
      retry(m);
      continue;
    }
    const header = body.slice(0, at + VISITORS.length);
    const target = endpoint || url;
    const key = `${target}\n${header}`;
    if (!groups.has(key)) groups.set(key, { url: target, header, posts: [] });
    const g = groups.get(key);
    const visitors = body.slice(header.length, -2);
    const n = bytes(visitors) + 1;
    let post = g.posts[g.posts.length - 1];
    if (!post || post.size + n > maxPayloadBytes) {
      post = { size: bytes(header) + 2, parts: [], messages: [] };
      g.posts.push(post);
    }
    post.parts.push(visitors);
    post.messages.push(m);
    post.size += n;
  }
  let posts = 0;
  let acked = 0;
  const work = [];
  for (const g of groups.values()) {
    for (const post of g.posts) {
      posts++;
      work.push(
        (async () => {
          let ok = false;
          try {
            const controller = new AbortController();
            const timer = setTimeout(() => controller.abort(), timeout);
            try {
              const res = await send(g.url, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json' },
                body: `${g.header}${post.parts.join(',')}]}`,
                signal: controller.signal,
              });
              ok = res.status >= 200 && res.status < 300;
            } finally {
              clearTimeout(timer);
            }
          } catch {
            ok = false;
          }
          for (const m of post.messages) {
            if (ok) {
              try {
                m.ack();
                acked++;
              } catch {
                retry(m);
              }
            } else {
              retry(m);
            }
          }
        })(),
      );
    }
  }
  await Promise.all(work);
  return { posts, acked, retried };
}
