// A real HTTP collector on 127.0.0.1 for the tests: records every request (method,
// path, headers, raw body bytes and text, parsed JSON) and answers with a status the test controls.
import http from 'node:http';

/**
 * Starts a collector on 127.0.0.1 and an ephemeral port.
 * @param {object} [opts]
 * @param {(req: {method: string, url: string, headers: object, body: string}) => number} [opts.status]
 *   picks the response status of each request (default 200).
 * @param {boolean} [opts.cors] answers CORS preflights and adds CORS headers (default true).
 */
export async function startCollector({ status = () => 200, cors = true } = {}) {
  const requests = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = raw.toString('utf8');
      if (cors) {
        res.setHeader('Access-Control-Allow-Origin', req.headers.origin || '*');
        res.setHeader('Access-Control-Allow-Headers', 'content-type');
        res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      }
      if (req.method === 'OPTIONS') {
        res.writeHead(204).end();
        return;
      }
      const record = { method: req.method, url: req.url, headers: req.headers, raw, body, json: undefined };
      try {
        record.json = JSON.parse(body);
      } catch {
        // not JSON: kept as raw text
      }
      const code = status(record);
      record.status = code;
      requests.push(record);
      res.writeHead(code, { 'content-type': 'application/json' }).end('{}');
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const collector = {
    url: `http://127.0.0.1:${port}/v1/events`,
    port,
    requests,
    /** Every event uuid received in a 2xx-answered request, in arrival order. */
    uuids() {
      return requests
        .filter((r) => r.status >= 200 && r.status < 300 && r.json)
        .flatMap((r) => r.json.visitors.flatMap((v) => v.snapshots.flatMap((s) => s.events.map((e) => e.uuid))));
    },
    /** Resolves once `predicate()` holds, checking after each request; rejects after `ms`. */
    async until(predicate, ms = 10000) {
      const deadline = Date.now() + ms;
      while (!predicate()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`collector: condition not met within ${ms} ms (${requests.length} requests)`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    close() {
      return new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      });
    },
  };
  return collector;
}
