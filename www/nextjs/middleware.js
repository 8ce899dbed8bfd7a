// Next.js middleware on the edge runtime (Vercel Edge, `edge-light`): one Optimizely
// conversion event per request, flushed with the request's `waitUntil`, so the POST to
// the collector outlives the response. The package resolves to its `edge-light` entry,
// which imports the wasm the way this runtime allows (`?module`).
import { NextResponse } from 'next/server';
import { BatchEventProcessor } from 'batch-event-processor';

// Module scope is fine: each request flushes what it processed (see flushWith below).
let processor;

export function middleware(request, event) {
  processor ??= new BatchEventProcessor({
    endpoint: process.env.EVENTS_ENDPOINT, // default: Optimizely's log endpoint
    batchSize: 10,
  });
  const url = new URL(request.url);
  processor.process({
    type: 'conversion',
    uuid: request.headers.get('x-event-id') ?? undefined, // filled in when missing
    context: { accountId: '12345', projectId: '678', revision: '9', clientName: 'nextjs-edge', clientVersion: '1.0.0' },
    user: { id: request.cookies.get('visitor')?.value ?? 'anonymous', attributes: [] },
    event: { id: '55', key: 'page_view' },
    tags: { path: url.pathname },
  });
  // event.waitUntil(flush), capped at 25 s and never rejecting.
  processor.flushWith(event);
  return NextResponse.next();
}

export const config = { matcher: '/((?!_next/|favicon.ico).*)' };
