// Owns the LogEvent objects handed to listeners and dispatchers. Must not: send,
// store or pack anything.

/** The LogEvent handed to listeners and dispatchers; `params` is parsed on first use. */
export function makeLogEvent(url, body) {
  let params;
  return {
    url,
    httpVerb: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
    get params() {
      if (params === undefined) params = JSON.parse(body);
      return params;
    },
  };
}
