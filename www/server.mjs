// The live demo's dev server (no dependencies): serves www/ at `/`, the built package
// (../pkg) at `/pkg/`, and runs a local Optimizely-like collector on the same origin.
//
//   node www/server.mjs            # PORT env or 8080 (an ephemeral port if busy)
//
//   POST /collector/v1/events      receives one EventBatch; answers with the fault mode
//   GET  /collector/stats          what the collector has received (JSON)
//   POST /collector/fault?mode=ok|500|429|slow
//   POST /collector/reset          forgets everything received
//
// `startDemoServer({ port })` does the same from code (tests pass port 0).
import http from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const WWW = here;
const PKG = path.resolve(here, '..', 'pkg');

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.ts': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** How each fault mode answers a batch. */
const FAULTS = {
  ok: { status: 200, delayMs: 0, label: 'healthy: 200 OK' },
  500: { status: 500, delayMs: 0, label: 'failing: 500 Internal Server Error' },
  429: { status: 429, delayMs: 0, retryAfter: '2', label: 'throttling: 429 Too Many Requests, Retry-After: 2' },
  slow: { status: 200, delayMs: 3000, label: 'slow: 200 OK after 3 s' },
};

const RECENT = 300; // requests kept in the log returned by /collector/stats

function newCollector() {
  return {
    mode: 'ok',
    since: Date.now(),
    requests: 0, // every POST that reached the collector
    batches: 0, // batches accepted (answered 200)
    events: 0, // events in accepted batches
    unique: 0, // distinct event uuids accepted
    duplicates: 0, // accepted events whose uuid had been accepted before
    bytes: 0, // body bytes of accepted batches
    rejected: 0, // requests answered with an error status
    abandoned: 0, // requests the client gave up on before the answer (timeouts)
    byStatus: {},
    sessions: {}, // per page session (?session= of the endpoint): the same counters
    recent: [], // { t, ms, status, events, bytes, session } newest last
    uuids: new Set(),
  };
}

/** Counts the events of an EventBatch and collects their uuids. */
function eventsOf(batch) {
  const uuids = [];
  for (const v of batch?.visitors ?? []) {
    for (const s of v?.snapshots ?? []) for (const e of s?.events ?? []) uuids.push(e?.uuid);
  }
  return uuids;
}

function sendJson(res, status, value, extra = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...extra });
  res.end(body);
}

async function serveFile(res, root, rel, method) {
  let file = path.resolve(root, '.' + path.posix.normalize('/' + rel));
  if (file !== root && !file.startsWith(root + path.sep)) return false; // no escaping the mount
  let info = await stat(file).catch(() => null);
  if (info?.isDirectory()) {
    file = path.join(file, 'index.html');
    info = await stat(file).catch(() => null);
  }
  if (!info?.isFile()) return false;
  const type = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
  const body = await readFile(file);
  res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(method === 'HEAD' ? undefined : body);
  return true;
}

/**
 * Starts the demo server on 127.0.0.1.
 * @param {{ port?: number, host?: string, quiet?: boolean }} [options] port 0 = ephemeral
 * @returns {Promise<{ url: string, port: number, server: http.Server, collector: object, close(): Promise<void> }>}
 */
export async function startDemoServer({ port = 0, host = '127.0.0.1', quiet = true } = {}) {
  let collector = newCollector();
  const timers = new Set();

  async function collect(req, res, url) {
    let gone = false; // the client aborted (its dispatchTimeout) before our answer
    res.on('close', () => {
      if (!res.writableFinished) gone = true;
    });
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const started = Date.now();
    const mode = collector.mode;
    const fault = FAULTS[mode];
    const session = url.searchParams.get('session') ?? '';
    if (fault.delayMs) {
      await new Promise((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, fault.delayMs);
        timers.add(t);
      });
    }
    const c = collector;
    c.requests++;
    let uuids = [];
    let status = fault.status;
    try {
      uuids = eventsOf(JSON.parse(raw.toString('utf8')));
    } catch {
      if (status === 200) status = 400;
    }
    const entry = {
      t: started,
      ms: Date.now() - started,
      status,
      events: uuids.length,
      bytes: raw.length,
      first: uuids[0] ?? null, // lets the page match attempts to its batches
      session,
      mode,
    };
    const s = (c.sessions[session] ??= { batches: 0, events: 0, bytes: 0, rejected: 0, abandoned: 0, duplicates: 0 });
    if (gone || res.destroyed) {
      // The client aborted (its dispatchTimeout): it will retry, so this one does not count.
      c.abandoned++;
      s.abandoned++;
      entry.status = 0;
    } else if (status === 200) {
      c.batches++;
      c.events += uuids.length;
      c.bytes += raw.length;
      s.batches++;
      s.events += uuids.length;
      s.bytes += raw.length;
      for (const u of uuids) {
        if (c.uuids.has(u)) {
          c.duplicates++;
          s.duplicates++;
        } else c.uuids.add(u);
      }
      c.unique = c.uuids.size;
    } else {
      c.rejected++;
      s.rejected++;
    }
    c.byStatus[entry.status] = (c.byStatus[entry.status] ?? 0) + 1;
    c.recent.push(entry);
    if (c.recent.length > RECENT) c.recent.splice(0, c.recent.length - RECENT);
    if (entry.status === 0) return;
    const headers = { 'content-type': 'application/json; charset=utf-8' };
    if (status !== 200 && fault.retryAfter) headers['retry-after'] = fault.retryAfter;
    res.writeHead(status, headers);
    res.end(status === 200 ? '{}' : JSON.stringify({ error: fault.label }));
  }

  function statsView(url) {
    const since = Number(url.searchParams.get('since') ?? 0);
    const { uuids, recent, ...rest } = collector;
    return { ...rest, label: FAULTS[collector.mode].label, now: Date.now(), recent: recent.filter((r) => r.t + r.ms > since) };
  }

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://localhost');
      const p = url.pathname;
      if (p === '/collector/v1/events' || p === '/collector/v1/events/') {
        if (req.method === 'POST') return await collect(req, res, url);
        return sendJson(res, 405, { error: 'POST an EventBatch here' }, { allow: 'POST' });
      }
      if (p === '/collector/stats') return sendJson(res, 200, statsView(url));
      if (p === '/collector/fault') {
        if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST ?mode=ok|500|429|slow' }, { allow: 'POST' });
        const mode = url.searchParams.get('mode');
        if (!Object.hasOwn(FAULTS, mode ?? '')) return sendJson(res, 400, { error: 'mode must be one of ok, 500, 429, slow' });
        collector.mode = mode;
        if (!quiet) console.log(`collector: ${FAULTS[mode].label}`);
        return sendJson(res, 200, { mode, label: FAULTS[mode].label });
      }
      if (p === '/collector/reset') {
        if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST' }, { allow: 'POST' });
        const mode = collector.mode;
        collector = newCollector();
        collector.mode = mode;
        return sendJson(res, 200, { ok: true });
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
      let rel;
      try {
        rel = decodeURIComponent(p);
      } catch {
        return sendJson(res, 400, { error: 'malformed path' });
      }
      const served = rel.startsWith('/pkg/')
        ? await serveFile(res, PKG, rel.slice('/pkg/'.length), req.method)
        : await serveFile(res, WWW, rel.slice(1), req.method);
      if (!served) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(rel.startsWith('/pkg/') ? 'not found (has the package been built? run `make build`)\n' : 'not found\n');
      }
    } catch (e) {
      if (!res.headersSent) sendJson(res, 500, { error: String(e?.message ?? e) });
      else res.destroy();
    }
  });

  const listen = (p) =>
    new Promise((resolve, reject) => {
      const onError = (e) => {
        server.off('listening', onListening);
        reject(e);
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(p, host);
    });
  try {
    await listen(port);
  } catch (e) {
    if (e.code !== 'EADDRINUSE' || port === 0) throw e;
    if (!quiet) console.log(`port ${port} is busy, using an ephemeral port`);
    await listen(0);
  }
  const actual = server.address().port;
  return {
    url: `http://${host}:${actual}/`,
    port: actual,
    server,
    get collector() {
      return collector;
    },
    close: () =>
      new Promise((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

// `node www/server.mjs`
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const port = process.env.PORT === undefined || process.env.PORT === '' ? 8080 : Number(process.env.PORT);
  const s = await startDemoServer({ port, quiet: false });
  console.log(`batch-event-processor demo: ${s.url}`);
  console.log(`collector: POST ${s.url}collector/v1/events, stats at ${s.url}collector/stats`);
  const stop = () => s.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
