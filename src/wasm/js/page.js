// Owns the requests the package makes itself: the default dispatcher's POST (its init
// and what is read of its response, `requestInit` and `answer`; dispatch.rs calls the
// global fetch) in every runtime, and beacons and keepalive fetches while the page
// goes away; and the browser page lifecycle: hide/leave and online/offline events. The
// page functions detect the page at run time and do nothing elsewhere (Node, Workers).
// Must not: store batches (storage.js), build bodies, decide outcomes or retries
// (dispatch.rs), or hold processor state.

/**
 * Browsers only (detected at run time): calls `onChange(what)` with `'hidden'` when the
 * page is hidden (`visibilitychange`: a tab switch, a minimized window; the page may
 * stay), `'left'` when it is being left (`pagehide`) and `'shown'` when it is visible
 * or shown again (`visibilitychange`, `pageshow`, as after the back/forward cache).
 * Returns a function that removes the listeners, or undefined where there is no page.
 * No `unload` listener: it would keep the page out of the back/forward cache.
 */
export function watchPage(onChange) {
  const doc = globalThis.document;
  if (!doc || typeof doc.addEventListener !== 'function' || typeof globalThis.addEventListener !== 'function') {
    return undefined;
  }
  const onVisibility = () => onChange(doc.visibilityState === 'hidden' ? 'hidden' : 'shown');
  const onPageHide = () => onChange('left');
  const onPageShow = () => onChange('shown');
  doc.addEventListener('visibilitychange', onVisibility);
  globalThis.addEventListener('pagehide', onPageHide);
  globalThis.addEventListener('pageshow', onPageShow);
  return () => {
    doc.removeEventListener('visibilitychange', onVisibility);
    globalThis.removeEventListener('pagehide', onPageHide);
    globalThis.removeEventListener('pageshow', onPageShow);
  };
}

function sameOrigin(url) {
  try {
    return new URL(url, globalThis.location.href).origin === globalThis.location.origin;
  } catch {
    return false;
  }
}

function bodyType(url) {
  return sameOrigin(url) ? 'application/json' : 'text/plain;charset=UTF-8';
}

/**
 * Queues a body with `navigator.sendBeacon` while the page goes away; `true` when the
 * browser took it. To another origin the body goes as `text/plain`, a CORS-safelisted
 * type: Chromium refuses a cross-origin beacon whose type is application/json.
 */
export function sendBeacon(url, body) {
  const nav = globalThis.navigator;
  try {
    return Boolean(nav && typeof nav.sendBeacon === 'function' && nav.sendBeacon(url, new Blob([body], { type: bodyType(url) })));
  } catch {
    return false;
  }
}

/**
 * The init of every POST the package makes. Redirects are not followed: `fetch` would
 * turn a 301/302/303 into a GET without the body, and the events would count as
 * delivered though no collector got them (dispatch.rs).
 */
function postInit(body, type, keepalive, signal) {
  return { method: 'POST', body, headers: { 'Content-Type': type }, keepalive, redirect: 'manual', signal };
}

/**
 * Nothing is read from a response body: it is cancelled, or the connection stays taken
 * (Node keeps the socket open until the response is garbage-collected); a body already
 * received in full leaves it free.
 */
function cancelBody(r) {
  r.body?.cancel().catch(() => {});
}

/**
 * The default dispatcher's request init (dispatch.rs passes it to the global `fetch`):
 * `application/json`, aborted through the `signal` of `flags` (made by
 * `dispatchFlags`, log-event.js), which dispatch.rs aborts at dispatchTimeout or at
 * close()'s deadline.
 */
export function requestInit(body, flags) {
  return postInit(body, 'application/json', false, flags.signal);
}

/**
 * What dispatch.rs needs of the default dispatcher's response, its body cancelled:
 * `{ statusCode, retryAfter }` (the `Retry-After` header value, or null). Rejects when
 * `fetched` rejects (a network error, an abort) or gives something other than a
 * Response.
 */
export function answer(fetched) {
  return fetched.then((r) => {
    if (!(r instanceof Response)) throw new TypeError('fetch gave no Response');
    cancelBody(r);
    return { statusCode: r.status, retryAfter: r.headers.get('retry-after') };
  });
}

/**
 * The fallback when a beacon is refused: a `keepalive` fetch (also `text/plain` across
 * origins: a preflighted keepalive request can be lost silently). Resolves with true on
 * a 2xx.
 */
export function keepalive(url, body) {
  try {
    return fetch(url, postInit(body, bodyType(url), true)).then(
      (r) => {
        cancelBody(r);
        return r.ok;
      },
      () => false,
    );
  } catch {
    return Promise.resolve(false);
  }
}

/** `true` in a browser that knows it is offline (`navigator.onLine === false`). */
export function isOffline() {
  return globalThis.navigator?.onLine === false;
}

/** Calls `onOnline` when the browser comes back online; returns a remover, or undefined. */
export function watchOnline(onOnline) {
  if (typeof globalThis.addEventListener !== 'function' || !globalThis.navigator || !('onLine' in globalThis.navigator)) {
    return undefined;
  }
  globalThis.addEventListener('online', onOnline);
  return () => globalThis.removeEventListener('online', onOnline);
}
