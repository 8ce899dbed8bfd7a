// Owns run-time detection of the JS host (Workers, ...). Must not: hold state or
// touch the page.

/** `true` in Cloudflare Workers (workerd), where a promise must not wait on another request's I/O. */
export function inWorkers() {
  return globalThis.navigator?.userAgent === 'Cloudflare-Workers';
}
