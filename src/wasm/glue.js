// Packs an Optimizely UserEvent into one string, the format of `core::packed`:
// every leaf is JSON.stringify'd (so strings are escaped and numbers formatted exactly
// as JavaScript does), undefined leaves are empty, fields are joined by U+0001 and the
// attribute tokens by U+0002. Structural problems (a container that is not an object)
// are reported here; the rules for every leaf are checked in Rust.

const SEP = '\u0001';
const SUB = '\u0002';

/** A value as error messages show it: strings quoted, the rest as `String(v)`. */
export function show(v) {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(v);
  } catch {
    return typeof v;
  }
}

function fail(field, rule, got) {
  return new TypeError(`${field} must be ${rule}, got ${show(got)}`);
}

function leaf(v, field) {
  if (v === undefined) return '';
  switch (typeof v) {
    case 'number':
      if (!Number.isFinite(v)) throw fail(field, 'a finite number', v);
      return JSON.stringify(v);
    case 'string':
    case 'boolean':
      return JSON.stringify(v);
    case 'object':
      if (v === null) return 'null';
      // Objects are never valid leaves: Rust reports them by their first byte.
      return Array.isArray(v) ? '[]' : '{}';
    default:
      throw fail(field, 'a string, number or boolean', typeof v);
  }
}

function object(v, field, optional) {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v;
  if (optional && (v === undefined || v === null)) return undefined;
  throw fail(field, optional ? 'an object, null or undefined' : 'an object', v);
}

function newUuid() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  // Insecure browser contexts have getRandomValues but not randomUUID.
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function attributes(list) {
  if (list === undefined || list === null) return '';
  if (!Array.isArray(list)) throw fail('user.attributes', 'an array', list);
  let out = '';
  for (let i = 0; i < list.length; i++) {
    const a = object(list[i], `user.attributes[${i}]`, false);
    const name = `user.attributes[${i}]`;
    out += (i ? SUB : '') + leaf(a.entityId, `${name}.entityId`) + SUB + leaf(a.key, `${name}.key`) + SUB + leaf(a.value, `${name}.value`);
  }
  return out;
}

function tags(t) {
  if (t === undefined) return '';
  if (t === null) return 'null';
  object(t, 'tags', true);
  try {
    return JSON.stringify(t);
  } catch (e) {
    throw fail('tags', 'JSON-serializable (no cycles, no BigInt)', e.message);
  }
}

/** Packs one UserEvent; throws a TypeError naming the field for a structural problem. */
export function pack(e) {
  object(e, 'event', false);
  const c = object(e.context, 'context', false);
  const u = object(e.user, 'user', false);
  const uuid = e.uuid === undefined || e.uuid === null ? newUuid() : e.uuid;
  let out =
    leaf(c.region, 'context.region') + SEP +
    leaf(c.accountId, 'context.accountId') + SEP +
    leaf(c.projectId, 'context.projectId') + SEP +
    leaf(c.revision, 'context.revision') + SEP +
    leaf(c.clientName, 'context.clientName') + SEP +
    leaf(c.clientVersion, 'context.clientVersion') + SEP +
    leaf(c.anonymizeIP, 'context.anonymizeIP') + SEP +
    leaf(c.botFiltering, 'context.botFiltering') + SEP +
    leaf(e.type, 'type') + SEP +
    leaf(uuid, 'uuid') + SEP +
    leaf(e.timestamp, 'timestamp') + SEP +
    leaf(u.id, 'user.id') + SEP +
    attributes(u.attributes) + SEP;
  if (e.type === 'conversion') {
    const ev = object(e.event, 'event', false);
    return out +
      leaf(ev.id, 'event.id') + SEP +
      leaf(ev.key, 'event.key') + SEP +
      leaf(e.revenue, 'revenue') + SEP +
      leaf(e.value, 'value') + SEP +
      tags(e.tags);
  }
  const layer = object(e.layer, 'layer', true);
  const experiment = object(e.experiment, 'experiment', true);
  const variation = object(e.variation, 'variation', true);
  return out +
    leaf(layer?.id, 'layer.id') + SEP +
    leaf(experiment?.id, 'experiment.id') + SEP +
    (variation ? '1' : '') + SEP +
    leaf(variation?.id, 'variation.id') + SEP +
    leaf(variation?.key, 'variation.key') + SEP +
    leaf(e.ruleKey, 'ruleKey') + SEP +
    leaf(e.flagKey, 'flagKey') + SEP +
    leaf(e.ruleType, 'ruleType') + SEP +
    leaf(e.enabled, 'enabled') + SEP +
    leaf(e.cmabUuid, 'cmabUuid');
}

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
