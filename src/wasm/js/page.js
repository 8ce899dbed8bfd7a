// Owns the browser page lifecycle: hide/leave and online/offline events, and sending
// while the page goes away (beacons, keepalive fetches). Every function detects the
// page at run time and does nothing elsewhere (Node, Workers). Must not: store
// batches (storage.js), build bodies, or hold processor state.

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
 * The fallback when a beacon is refused: a `keepalive` fetch (also `text/plain` across
 * origins: a preflighted keepalive request can be lost silently). Resolves with true on
 * a 2xx.
 */
export function keepalive(url, body) {
  try {
    // Redirects are not followed (see dispatch.rs); the body is never read.
    const init = { method: 'POST', body, headers: { 'Content-Type': bodyType(url) }, keepalive: true, redirect: 'manual' };
    return fetch(url, init).then(
      (r) => {
        r.body?.cancel().catch(() => {});
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
