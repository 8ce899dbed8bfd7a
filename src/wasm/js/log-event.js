// Owns the LogEvent objects handed to listeners and dispatchers. Must not: send,
// store or pack anything, or decode a body nobody asked for.

const decoder = new TextDecoder();

/**
 * The LogEvent handed to listeners and dispatchers. `bytes` is the UTF-8 body Rust
 * wrote, a `Uint8Array` of its own (copied out of wasm memory once): the default
 * dispatcher, beacons and keepalive requests send it as is. `body` (the same JSON as a
 * string) and `params` (parsed) are decoded on first access, then cached, so no string
 * is built unless someone reads them. Assigning either replaces what later reads see
 * (never what is sent).
 */
export function makeLogEvent(url, bytes) {
  let body;
  let params;
  const text = () => (body === undefined ? (body = decoder.decode(bytes)) : body);
  return {
    url,
    httpVerb: 'POST',
    headers: { 'Content-Type': 'application/json' },
    bytes,
    get body() {
      return text();
    },
    set body(value) {
      body = value;
    },
    get params() {
      if (params === undefined) params = JSON.parse(text());
      return params;
    },
    set params(value) {
      params = value;
    },
  };
}
