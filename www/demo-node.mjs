// `make demo` (Node part): batches events to a local collector on 127.0.0.1 and prints
// every batch the collector receives.
import http from 'node:http';
import { BatchEventProcessor } from '../pkg/node.js';

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const batch = JSON.parse(body);
    const kinds = batch.visitors.map((v) => (v.snapshots[0].decisions ? 'impression' : 'conversion'));
    console.log(`collector <- POST ${req.url}: ${batch.visitors.length} events (${kinds.filter((k) => k === 'impression').length} impressions), ${Buffer.byteLength(body)} bytes, project ${batch.project_id}`);
    res.writeHead(200).end('{}');
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${server.address().port}/v1/events`;
console.log(`collector listening on ${endpoint}`);

const p = new BatchEventProcessor({ batchSize: 10, flushInterval: 1000, endpoint });
const context = { accountId: '12345', projectId: '678', revision: '42', clientName: 'demo', clientVersion: '0.1.0', anonymizeIP: true, botFiltering: true };
for (let i = 0; i < 25; i++) {
  const user = { id: `visitor-${i % 5}`, attributes: [{ entityId: '101', key: 'plan', value: i % 2 ? 'pro' : 'free' }] };
  p.process(
    i % 3
      ? { type: 'impression', context, user, layer: { id: '1' }, experiment: { id: '2', key: 'checkout' }, variation: { id: '3', key: 'treatment' }, ruleKey: 'checkout', flagKey: 'new_checkout', ruleType: 'experiment', enabled: true }
      : { type: 'conversion', context, user, event: { id: '9', key: 'purchase' }, revenue: 4200, tags: { revenue: 4200 } },
  );
}
console.log('processed 25 events (batchSize 10): two full batches go now, the last 5 after flushInterval or close()');
await new Promise((r) => setTimeout(r, 1200));
await p.close();
console.log('stats:', p.stats());
server.close();
