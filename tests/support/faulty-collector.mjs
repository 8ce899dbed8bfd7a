// A fault-injecting HTTP collector on 127.0.0.1 (ephemeral port) for soak and
// resilience tests and the demo. Seeded, so the same seed gives the same fault for the
// n-th request, and scriptable:
//
//   const c = await startFaultyCollector({ seed: 7, rate: 0.3, faults: { 500: 2, reset: 1 } });
//   c.setMode('500');        // the collector is "down": every request answers 500 ...
//   c.setMode(null);         // ... until it recovers (back to the options it started with)
//   c.delivered();           // uuids of the events in 2xx-answered requests
//   c.counts();              // { ok: 812, 500: 140, reset: 37, ... }
//   await c.until(() => c.delivered().length >= 100, 5000);
//   await c.close();         // also destroys stalled sockets and cancels slow answers
//
// Fault kinds (a kind is what the collector does with one request, after reading its body):
//   'ok'        200 at once
//   'slow'      200 after `slowMs` (a number, or [min, max] drawn from the PRNG)
//   '500' '502' that status
//   '503'       503 without Retry-After
//   '429'       429 with `Retry-After: <retryAfter>` (seconds)
//   '503-date'  503 with `Retry-After: <HTTP date retryAfterDate seconds from now>`
//   '413'       413 Payload Too Large (also picked for every body above `tooLargeAbove` bytes)
//   'reset'     destroys the socket without answering (the body was read: the server got it)
//   'stall'     never answers (the body was read); the client's timeout has to cut it off
//   any other three-digit status, e.g. '400' or 404: answered as is, without a body of note
//               (a 3xx with `Location: <redirectTo>` when that option is set)
//
// Answers: `responseBytes` gives 2xx answers a body of that many bytes (a collector that
// talks too much); `unfinishedResponses()` counts answers whose body is still being written
// on an open socket (a client that neither reads nor cancels a response body leaves them).
//
// How the kind of a request is picked, first match wins:
//   1. the mode set with setMode(): a kind (every request), a function
//      `(record, rand) => kind | undefined` (undefined falls through), or an options
//      object replacing { rate, faults, script, pick, tooLargeAbove } until setMode(null);
//   2. `tooLargeAbove`: a body of more bytes answers 413;
//   3. `script`: an array of kinds consumed one per request (a sparse entry or
//      null/undefined falls through for that request);
//   4. `pick(record, rand)`: a function returning a kind, or undefined to fall through;
//   5. `rate`: with that probability a kind drawn from the weights in `faults`;
//   6. 'ok'.
import http from 'node:http';

/** mulberry32 (the same generator as tests/support/events.mjs). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every fault kind the collector knows by name (besides plain statuses). */
export const FAULT_KINDS = Object.freeze(['500', '502', '503', '429', '503-date', '413', 'reset', 'stall', 'slow']);

/** Default weights when a fault is drawn by `rate`: every kind of FAULT_KINDS but 413 (sized by `tooLargeAbove`). */
export const DEFAULT_FAULTS = Object.freeze({ 500: 1, 502: 1, 503: 1, 429: 1, '503-date': 1, reset: 1, stall: 1, slow: 1 });

/** The uuids of the events of a parsed EventBatch (in body order). */
export function uuidsOf(json) {
  if (!json || !Array.isArray(json.visitors)) return [];
  return json.visitors.flatMap((v) => (v.snapshots || []).flatMap((s) => (s.events || []).map((e) => e.uuid)));
}

function normalizeKind(kind) {
  if (kind === undefined || kind === null) return undefined;
  const k = String(kind);
  if (k === 'ok' || FAULT_KINDS.includes(k) || /^[1-5]\d\d$/.test(k)) return k;
  throw new Error(`faulty-collector: unknown fault kind ${JSON.stringify(kind)}`);
}

function weighted(faults, r) {
  const entries = Object.entries(faults).filter(([, w]) => w > 0);
  const total = entries.reduce((s, [, w]) => s + w, 0);
  if (total <= 0) return 'ok';
  let x = r * total;
  for (const [k, w] of entries) {
    if ((x -= w) < 0) return k;
  }
  return entries[entries.length - 1][0];
}

/**
 * Starts a fault-injecting collector on 127.0.0.1 and an ephemeral port.
 * @param {object} [opts]
 * @param {number} [opts.seed=1] seed of the PRNG (three draws per request, in arrival order)
 * @param {number} [opts.rate=0] probability that a request gets a fault drawn from `faults`
 * @param {Record<string, number>} [opts.faults=DEFAULT_FAULTS] weight of each fault kind
 * @param {Array<string|number|null>} [opts.script] kinds for the next requests, in order
 * @param {(record: object, rand: () => number) => (string|number|undefined)} [opts.pick]
 * @param {number} [opts.tooLargeAbove] bodies of more bytes are answered 413
 * @param {number} [opts.retryAfter=1] seconds in the Retry-After of '429'
 * @param {number} [opts.retryAfterDate=2] seconds from now of the HTTP date in '503-date'
 * @param {number|[number, number]} [opts.slowMs=100] delay of 'slow' answers
 * @param {boolean} [opts.cors=true] answers preflights and adds CORS headers (browser demo)
 * @param {boolean} [opts.keepBodies=true] keep each request's raw body text in its record
 * @param {boolean} [opts.keepJson=true] keep each request's parsed body in its record
 *   (`uuids` is always kept); false saves memory in long soaks
 * @param {(record: object) => void} [opts.onRequest] called with each record, parsed body
 *   included, once its fault kind is picked
 * @param {number} [opts.responseBytes] body size of 2xx answers (default: `{}`)
 * @param {string} [opts.redirectTo] `Location` of 3xx answers (a path or a URL)
 */
export async function startFaultyCollector(opts = {}) {
  const base = {
    rate: opts.rate ?? 0,
    faults: opts.faults ?? DEFAULT_FAULTS,
    script: opts.script ? [...opts.script] : [],
    pick: opts.pick,
    tooLargeAbove: opts.tooLargeAbove,
  };
  const retryAfter = opts.retryAfter ?? 1;
  const retryAfterDate = opts.retryAfterDate ?? 2;
  const slowMs = opts.slowMs ?? 100;
  const cors = opts.cors ?? true;
  const keepBodies = opts.keepBodies ?? true;
  const keepJson = opts.keepJson ?? true;
  const onRequest = opts.onRequest;
  const okBody = opts.responseBytes ? Buffer.alloc(opts.responseBytes, 0x20) : '{}';
  const redirectTo = opts.redirectTo;
  const responses = new Set(); // answered responses whose body is still being written
  const rand = prng(opts.seed ?? 1);

  let mode = null; // null | { kind } | { fn } | config object like `base`
  const requests = [];
  const counts = {};
  const deliveredCount = new Map(); // uuid -> times delivered (2xx)
  const delivered = []; // uuids in arrival order of their 2xx answers
  const waiters = [];
  const stalled = new Set(); // sockets of requests that will never be answered
  const timers = new Set(); // pending 'slow' answers
  const sockets = new Set();
  let closed = false;

  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };

  function config() {
    return mode && mode.config ? mode.config : base;
  }

  function decide(record, draws) {
    if (mode?.kind) return mode.kind;
    if (mode?.fn) {
      const k = normalizeKind(mode.fn(record, rand));
      if (k) return k;
    }
    const c = config();
    if (c.tooLargeAbove !== undefined && record.bytes > c.tooLargeAbove) return '413';
    if (c.script && c.script.length) {
      const k = normalizeKind(c.script.shift());
      if (k) return k;
    }
    if (c.pick) {
      const k = normalizeKind(c.pick(record, rand));
      if (k) return k;
    }
    if (c.rate > 0 && draws[0] < c.rate) return normalizeKind(weighted(c.faults ?? DEFAULT_FAULTS, draws[1]));
    return 'ok';
  }

  function corsHeaders(req) {
    if (!cors) return {};
    return {
      'access-control-allow-origin': req.headers.origin || '*',
      'access-control-allow-headers': 'content-type',
      'access-control-allow-methods': 'POST, OPTIONS',
      'access-control-expose-headers': 'retry-after',
    };
  }

  function answer(req, res, record, status, headers = {}) {
    record.status = status;
    record.answeredAt = Date.now();
    if (status >= 200 && status < 300) {
      record.delivered = true;
      for (const u of record.uuids) {
        deliveredCount.set(u, (deliveredCount.get(u) || 0) + 1);
        delivered.push(u);
      }
    }
    if (!res.destroyed && res.socket && !res.socket.destroyed) {
      const ok = status >= 200 && status < 300;
      if (redirectTo !== undefined && status >= 300 && status < 400) headers = { location: redirectTo, ...headers };
      responses.add(res);
      const done = () => responses.delete(res);
      res.once('finish', done);
      res.once('close', done);
      res.writeHead(status, { 'content-type': 'application/json', ...corsHeaders(req), ...headers }).end(ok ? okBody : '{}');
    } else {
      record.clientGone = true;
    }
    wake();
  }

  const server = http.createServer((req, res) => {
    const arrivedAt = Date.now();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, corsHeaders(req)).end();
        return;
      }
      const raw = Buffer.concat(chunks);
      const body = raw.toString('utf8');
      let json;
      try {
        json = JSON.parse(body);
      } catch {
        // not JSON: kept as raw text
      }
      const record = {
        index: requests.length,
        method: req.method,
        url: req.url,
        headers: req.headers,
        arrivedAt,
        receivedAt: Date.now(),
        bytes: raw.length,
        body: keepBodies ? body : undefined,
        json,
        uuids: uuidsOf(json),
        kind: undefined,
        status: null, // null until answered; stays null for 'reset' and 'stall'
        answeredAt: undefined,
        retryAt: undefined, // epoch ms the Retry-After asks the client to wait until
        delivered: false,
      };
      const draws = [rand(), rand(), rand()];
      let kind;
      try {
        kind = decide(record, draws);
      } catch (e) {
        res.writeHead(500).end(String(e));
        throw e;
      }
      record.kind = kind;
      counts[kind] = (counts[kind] || 0) + 1;
      requests.push(record);
      onRequest?.(record);
      if (!keepJson) record.json = undefined;
      switch (kind) {
        case 'ok':
          answer(req, res, record, 200);
          break;
        case 'slow': {
          const [lo, hi] = Array.isArray(slowMs) ? slowMs : [slowMs, slowMs];
          const t = setTimeout(() => {
            timers.delete(t);
            answer(req, res, record, 200);
          }, lo + Math.floor(draws[2] * (hi - lo + 1)));
          timers.add(t);
          wake();
          break;
        }
        case '429':
          record.retryAt = Date.now() + retryAfter * 1000;
          answer(req, res, record, 429, { 'retry-after': String(retryAfter) });
          break;
        case '503-date': {
          const date = new Date(Date.now() + retryAfterDate * 1000);
          const header = date.toUTCString(); // whole seconds: the wait is up to 1 s shorter
          record.retryAt = Date.parse(header);
          answer(req, res, record, 503, { 'retry-after': header });
          break;
        }
        case 'reset':
          req.socket.destroy();
          wake();
          break;
        case 'stall':
          stalled.add(req.socket);
          req.socket.once('close', () => {
            stalled.delete(req.socket);
            record.cutOffAt = Date.now(); // the client gave up (or close() destroyed it)
          });
          wake();
          break;
        default:
          answer(req, res, record, Number(kind));
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const origin = `http://127.0.0.1:${port}`;

  return {
    /** `http://127.0.0.1:<port>/v1/events` */
    url: `${origin}/v1/events`,
    origin,
    port,
    /** Every POST (and any other non-OPTIONS request), in arrival order. */
    requests,
    /**
     * Changes how requests are answered from now on:
     * a kind ('500', 'stall', 'ok', ...) for every request, a function
     * `(record, rand) => kind | undefined`, an options object
     * `{ rate, faults, script, pick, tooLargeAbove }`, or null to go back to the
     * options the collector was started with.
     */
    setMode(next) {
      if (next === null || next === undefined) mode = null;
      else if (typeof next === 'function') mode = { fn: next };
      else if (typeof next === 'object') {
        mode = { config: { rate: 0, faults: DEFAULT_FAULTS, ...next, script: next.script ? [...next.script] : [] } };
      } else mode = { kind: normalizeKind(next) };
    },
    /** Appends kinds for the next requests to the script in force. */
    script(...kinds) {
      config().script.push(...kinds);
    },
    /** uuids of the events in 2xx-answered requests, in order (repeated if delivered twice). */
    delivered() {
      return delivered.slice();
    },
    /** Same as delivered(), named like tests/support/collector.mjs. */
    uuids() {
      return delivered.slice();
    },
    /** uuid -> number of 2xx-answered requests that carried it. */
    deliveredCounts() {
      return deliveredCount;
    },
    /** Requests per kind, e.g. { ok: 900, 500: 40, reset: 12 }. */
    counts() {
      return { ...counts };
    },
    /** Answers whose body is still being written on an open socket (the client neither read nor cancelled it). */
    unfinishedResponses() {
      return responses.size;
    },
    /** Sockets of stalled requests still open. */
    stalledOpen() {
      return stalled.size;
    },
    /** Resolves once `predicate()` holds, checking after each request or answer; rejects after `ms`. */
    async until(predicate, ms = 10000) {
      const deadline = Date.now() + ms;
      while (!predicate()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`faulty-collector: condition not met within ${ms} ms (${requests.length} requests)`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 100));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    /** Stops listening, cancels slow answers and destroys every socket (stalled ones included). */
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of stalled) s.destroy();
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
        wake();
      });
    },
  };
}
