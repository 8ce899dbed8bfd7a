// Owns the shape checks and the TypeError messages every glue module shares
// (`<field> must be <rule>, got <value>`), so they read the same wherever they come
// from. Must not: know about events, options or the wasm; hold state.

/** A value as error messages show it: strings quoted, the rest as `String(v)`. */
export function show(v) {
  if (typeof v === 'function') return 'a function';
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(v);
  } catch {
    return typeof v;
  }
}

/** The TypeError for `field` breaking `rule`, showing what was given. */
export function fail(field, rule, got) {
  return new TypeError(`${field} must be ${rule}, got ${show(got)}`);
}

/** `true` for an object that is not an array (what every container of an event must be). */
export function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `v` when it is an object; `undefined` for null/undefined when `optional`; else throws. */
export function object(v, field, optional) {
  if (isObject(v)) return v;
  if (optional && (v === undefined || v === null)) return undefined;
  throw fail(field, optional ? 'an object, null or undefined' : 'an object', v);
}
