// Cloudflare Workers helpers: a Cloudflare Queues producer dispatcher and a consumer
// that merges queued batches into full-size Optimizely batches. Plain JS: they only
// move the bytes the processor wrote (no string decode, no parsing of the events).
//
// Message format: `{ url, bytes }` with `contentType: 'v8'` (structured clone), where
// `bytes` is a Uint8Array holding an exact Optimizely EventBatch body. Queues hands a
// 'v8' body back as the same object, the Uint8Array as a Uint8Array, so the bytes Rust
// wrote reach the consumer without ever being a JS string. A 'json' message would need
// the body as a string (one decode per batch, and JSON escaping grows it past the
// measured size); a 'bytes' message carries no url. The consumer still accepts the
// `{ url, body }` JSON messages of earlier versions.

const MESSAGE_BYTES = 128_000; // Queues: 128 KB per message, measured serialized
const MESSAGE_LIMIT = 120_000; // largest body per message, leaving room for the envelope
const ENVELOPE_BYTES = 256; // v8 serialization of `{ url, bytes }` beside the bytes and the url
const SEND_BATCH_MESSAGES = 100; // Queues: sendBatch takes at most 100 messages ...
const SEND_BATCH_BYTES = 250_000; // ... and 256 KB in all
const MAX_PAYLOAD_BYTES = 3_500_000;

const encoder = new TextEncoder();
const VISITORS = encoder.encode('"visitors":[');
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** Index of `needle` in `hay` (both Uint8Arrays), or -1. */
function indexOf(hay, needle) {
  const first = needle[0];
  const last = hay.length - needle.length;
  for (let i = hay.indexOf(first); i >= 0 && i <= last; i = hay.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/**
 * Where the visitors of an EventBatch body start: just after its `"visitors":[`, or -1
 * when `bytes` is not `{…"visitors":[` + `{…}` + `]}`. The header written before the
 * visitors holds only JSON strings, numbers and booleans, and a string cannot hold
 * `"visitors":[` unescaped, so the first match is the key.
 */
function visitorsStart(bytes) {
  const at = indexOf(bytes, VISITORS);
  if (at < 0) return -1;
  const start = at + VISITORS.length;
  const n = bytes.length;
  const framed =
    n >= start + 4 &&
    bytes[0] === OPEN_BRACE &&
    bytes[start] === OPEN_BRACE &&
    bytes[n - 3] === CLOSE_BRACE &&
    bytes[n - 2] === CLOSE_BRACKET &&
    bytes[n - 1] === CLOSE_BRACE;
  return framed ? start : -1;
}

/**
 * The `[start, end)` byte ranges of the visitors of an EventBatch body whose visitors
 * begin at `from`, or null if the bytes there are not `{…},{…}]}` (what the processor
 * writes: no whitespace). Works on the UTF-8 bytes: every byte of a multi-byte UTF-8
 * character is >= 0x80, so only string delimiters, escapes, braces and brackets are
 * ASCII bytes that matter, and strings are skipped with their `\` escapes.
 */
function visitorRanges(bytes, from) {
  const ranges = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = from;
  let expectVisitor = true;
  for (let i = from; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (b === BACKSLASH) escaped = true;
      else if (b === QUOTE) inString = false;
    } else if (depth > 0) {
      if (b === QUOTE) inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) {
          if (b !== CLOSE_BRACE) return null;
          ranges.push([start, i + 1]);
          expectVisitor = false;
        }
      }
    } else if (expectVisitor) {
      if (b !== OPEN_BRACE) return null;
      start = i;
      depth = 1;
    } else if (b === COMMA) {
      expectVisitor = true;
    } else {
      // The end of the visitors: `]}` and nothing after.
      const last = i === bytes.length - 2 && b === CLOSE_BRACKET && bytes[i + 1] === CLOSE_BRACE;
      return last ? ranges : null;
    }
  }
  return null;
}

/** A body made of `header`, the visitors `parts` (Uint8Arrays) joined by commas, and `]}`. */
function joinBody(header, parts) {
  let size = header.length + parts.length - 1 + 2;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  out.set(header, 0);
  let at = header.length;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[at++] = COMMA;
    out.set(parts[i], at);
    at += parts[i].length;
  }
  out[at++] = CLOSE_BRACKET;
  out[at] = CLOSE_BRACE;
  return out;
}

/**
 * Splits a batch body (UTF-8 bytes) into bodies of at most `limit` bytes, by visitor,
 * without decoding it. Returns null if a single visitor cannot fit `limit` alone;
 * throws if `bytes` is not an EventBatch body.
 */
function splitBytes(bytes, limit) {
  const from = visitorsStart(bytes);
  const ranges = from < 0 ? null : visitorRanges(bytes, from);
  if (!ranges) throw new TypeError('queueDispatcher: the batch body is not an Optimizely EventBatch');
  const header = bytes.subarray(0, from);
  const out = [];
  let parts = [];
  let size = header.length + 2;
  for (const [start, end] of ranges) {
    const n = end - start;
    if (header.length + n + 2 > limit) return null;
    if (parts.length && size + n + 1 > limit) {
      out.push(joinBody(header, parts));
      parts = [];
      size = header.length + 2;
    }
    size += (parts.length ? 1 : 0) + n;
    parts.push(bytes.subarray(start, end));
  }
  out.push(joinBody(header, parts));
  return out;
}

/** `bytes`, or a copy of it when it views part of a larger buffer (structured clone would send the whole buffer). */
function ownBytes(bytes) {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/**
 * A dispatcher that sends each batch to a Cloudflare Queue (a producer binding such as
 * `env.EVENTS`) instead of POSTing it: `new BatchEventProcessor({ dispatcher:
 * queueDispatcher(env.EVENTS) })`. Each message is `{ url, bytes }` with `contentType:
 * 'v8'`: `bytes` (a Uint8Array) is the exact Optimizely EventBatch body the processor
 * wrote, never decoded into a string. Batches over 120 KB are split by visitor into
 * several messages, on the bytes (Queues caps a message at 128 KB); a batch holding a
 * visitor that cannot fit a message alone is answered 413 before anything is sent, so
 * the processor splits it and gives up only that event. Messages are sent with
 * `sendBatch` in groups of at most 100 messages and 250 KB; a failed send rejects, so
 * the processor retries the batch. Every event keeps its uuid (Queues delivers at least
 * once: let the collector deduplicate by uuid).
 */
export function queueDispatcher(queue) {
  if (!queue || typeof queue.sendBatch !== 'function') {
    throw new TypeError('queue must be a Cloudflare Queue producer binding (with sendBatch), got ' + typeof queue);
  }
  return async (logEvent) => {
    const url = logEvent.url;
    // The processor's LogEvents carry `bytes`; anything else (a LogEvent built by hand)
    // is encoded, which is the only copy it gets.
    const bytes =
      logEvent.bytes instanceof Uint8Array
        ? logEvent.bytes
        : encoder.encode(typeof logEvent.body === 'string' ? logEvent.body : JSON.stringify(logEvent.params));
    // Structured clone writes a one-byte string per character, or two for other
    // strings: a long url leaves less room for the body.
    const overhead = ENVELOPE_BYTES + 2 * url.length;
    const limit = Math.min(MESSAGE_LIMIT, MESSAGE_BYTES - overhead);
    const bodies = bytes.length <= limit ? [ownBytes(bytes)] : splitBytes(bytes, limit);
    if (!bodies) return { statusCode: 413 };
    let group = [];
    let size = 0;
    for (const body of bodies) {
      const n = body.length + overhead;
      if (group.length && (group.length === SEND_BATCH_MESSAGES || size + n > SEND_BATCH_BYTES)) {
        await queue.sendBatch(group);
        group = [];
        size = 0;
      }
      group.push({ body: { url, bytes: body }, contentType: 'v8' });
      size += n;
    }
    await queue.sendBatch(group);
    return { statusCode: 200 };
  };
}

/**
 * The UTF-8 bytes of a message body: `{ url, bytes }` (this version: a Uint8Array, or
 * any ArrayBuffer or view of one) or `{ url, body }` (earlier versions: JSON text,
 * encoded here, so that messages queued before a deploy are still delivered). Null for
 * anything else.
 */
function messageBytes(body) {
  if (!body || typeof body !== 'object' || typeof body.url !== 'string') return null;
  const { bytes } = body;
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (Object.prototype.toString.call(bytes) === '[object ArrayBuffer]') return new Uint8Array(bytes);
  if (bytes === undefined && typeof body.body === 'string') return encoder.encode(body.body);
  return null;
}

/** A string holding one char per byte of `bytes`: a map key for bytes, not a decode. */
function byteKey(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 4096) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
  return s;
}

/**
 * The queue consumer: merges the messages of a Queues batch into full-size Optimizely
 * batches (one per context and endpoint, each at most `maxPayloadBytes`), POSTs them as
 * bytes, and acks each message whose batch got a 2xx; every other message is retried
 * with `retryDelay` seconds (so Queues redelivers it, and after `max_retries` moves it
 * to the dead-letter queue if one is configured). Accepts the `{ url, bytes }` messages
 * of `queueDispatcher` and the `{ url, body }` JSON messages of earlier versions; a
 * message that is neither is retried (it ends in the dead-letter queue). Never throws:
 * a throwing queue handler would make Queues retry the whole batch, ignoring the acks.
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
    let bytes = null;
    let start = -1;
    try {
      bytes = messageBytes(m && m.body);
      start = bytes ? visitorsStart(bytes) : -1;
    } catch {
      start = -1;
    }
    if (start < 0) {
      // Not ours or corrupted: retrying cannot help, let it go to the dead-letter queue.
      retry(m);
      continue;
    }
    const header = bytes.subarray(0, start);
    const target = endpoint || m.body.url;
    const key = `${target}\n${byteKey(header)}`;
    if (!groups.has(key)) groups.set(key, { url: target, header, posts: [] });
    const g = groups.get(key);
    const visitors = bytes.subarray(start, bytes.length - 2);
    const n = visitors.length + 1;
    let post = g.posts[g.posts.length - 1];
    if (!post || post.size + n > maxPayloadBytes) {
      post = { size: header.length + 1, parts: [], messages: [] };
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
                body: joinBody(g.header, post.parts),
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
