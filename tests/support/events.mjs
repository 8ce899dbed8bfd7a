// Optimizely `UserEvent`s for tests and benchmarks, in the shape the Optimizely
// JavaScript SDK 6 builds them (event_processor/event_builder/user_event.js):
//
//   makeEvents(n, { seed })  N deterministic, varied events (same seed -> same events)
//   edgeCaseEvents()         a fixed, named list covering every corner of the wire format
//   contextKey(event)        the key under which the SDK keeps events in one batch
//   groupByContext(events)   events split into single-context groups, order kept
//   plainImpression(n, o)    one small impression of PLAIN_CONTEXT, number n, fields `o` replaced
//
// Every event has `uuid` and `timestamp` set, so two builders given the same event must
// produce the same bytes.

/** Contexts the generator draws from; index 0 is the one `{ contexts: 1 }` uses. */
export const CONTEXTS = Object.freeze([
  { accountId: '12133785640', projectId: '6460519658291200', revision: '241', clientName: 'node-sdk', clientVersion: '6.6.1', anonymizeIP: true, botFiltering: false },
  { accountId: '12133785640', projectId: '6460519658291200', revision: '241', clientName: 'node-sdk', clientVersion: '6.6.1', anonymizeIP: true, botFiltering: false, region: 'EU' },
  { accountId: '8224961457', projectId: '20410805626', revision: '1078', clientName: 'javascript-sdk', clientVersion: '6.6.1', anonymizeIP: false, botFiltering: true, region: 'US' },
  { accountId: '8224961457', projectId: '20410805626', revision: '7', clientName: 'react-sdk', clientVersion: '3.2.3', anonymizeIP: false },
  { accountId: '4679942324', projectId: '4679942324', revision: '99', clientName: 'javascript-sdk/custom', clientVersion: '5.3.4', anonymizeIP: true, botFiltering: true, region: 'EU' },
].map((c) => Object.freeze(c)));

/** The one context of `plainImpression`: small ids, one batch for every such event. */
export const PLAIN_CONTEXT = Object.freeze({ accountId: '12345', projectId: '678', revision: '9', clientName: 'node-sdk', clientVersion: '6.0.0', anonymizeIP: true, botFiltering: false });

/**
 * A small impression of PLAIN_CONTEXT: uuid `imp-<n>`, timestamp 1700000000000 + n, user
 * `visitor-<n>` with no attributes; `overrides` replace whole top-level fields.
 */
export function plainImpression(n, overrides = {}) {
  return {
    type: 'impression',
    uuid: `imp-${n}`,
    timestamp: 1700000000000 + n,
    context: { ...PLAIN_CONTEXT },
    user: { id: `visitor-${n}`, attributes: [] },
    layer: { id: '1' },
    experiment: { id: '2', key: 'exp' },
    variation: { id: '3', key: 'on' },
    ruleKey: 'exp',
    flagKey: 'flag',
    ruleType: 'feature-test',
    enabled: true,
    ...overrides,
  };
}

/** mulberry32: a small, fast, deterministic PRNG returning floats in [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uuidFrom(rand) {
  let h = '';
  for (let i = 0; i < 32; i++) h += Math.floor(rand() * 16).toString(16);
  const variant = '89ab'[Math.floor(rand() * 4)];
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// Strings that stress JSON escaping and UTF-8 byte counting.
const TRICKY_STRINGS = [
  'Zürich',
  'naïve café',
  '東京都',
  'emoji 🎉👩‍💻',
  'quote " and backslash \\',
  'tab\tnew\nline\rret',
  'ctrl \u0001\u0002\u001f del \u007f',
  'sep \u2028 \u2029',
  '</script><b>&amp;',
  'Ελληνικά / русский / עברית',
  '',
];
const PLAIN_STRINGS = ['pro', 'free', 'enterprise', 'mobile', 'desktop', 'chrome', 'safari', 'beta', 'returning', 'new'];
const NUMBERS = [0, 1, 42, -7, 3.14, 0.1 + 0.2, 1e21, 1e-7, 2 ** 53, -1.5, 123456789.125, Number.MAX_SAFE_INTEGER];
const ATTRIBUTE_KEYS = [
  ['10401066117', 'plan'],
  ['10401066118', 'device'],
  ['10401066119', 'age'],
  ['10401066120', 'is_vip'],
  ['10401066121', 'country'],
  ['10401066122', 'score'],
  ['10401066123', 'browser'],
  ['$opt_bucketing_id', '$opt_bucketing_id'],
];
const RULE_TYPES = ['experiment', 'feature-test', 'rollout', 'holdout'];
const EVENT_KEYS = [
  ['15073540046', 'purchase'],
  ['15073540047', 'add_to_cart'],
  ['15073540048', 'sign_up'],
  ['15073540049', 'checkout_ünïcödé'],
];

/**
 * `n` deterministic, varied UserEvents.
 * @param {number} n
 * @param {object} [opts]
 * @param {number} [opts.seed=1] same seed, same events
 * @param {number} [opts.contexts=CONTEXTS.length] draw contexts from the first `contexts`
 *   entries of CONTEXTS (1 = every event shares one context, for benchmarks)
 * @param {number} [opts.conversionRate=0.4] share of conversions
 * @param {number} [opts.trickyRate=0.15] share of strings taken from TRICKY_STRINGS
 * @param {number} [opts.timestamp=1700000000000] timestamp of the first event
 */
export function makeEvents(n, { seed = 1, contexts = CONTEXTS.length, conversionRate = 0.4, trickyRate = 0.15, timestamp = 1700000000000 } = {}) {
  const rand = prng(seed);
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const str = () => (rand() < trickyRate ? pick(TRICKY_STRINGS) : pick(PLAIN_STRINGS));
  const digits = (len) => {
    let s = String(1 + Math.floor(rand() * 9));
    while (s.length < len) s += Math.floor(rand() * 10);
    return s;
  };
  const pool = CONTEXTS.slice(0, Math.max(1, Math.min(contexts, CONTEXTS.length)));
  const events = [];
  let ts = timestamp;
  for (let i = 0; i < n; i++) {
    ts += Math.floor(rand() * 5000);
    const attributes = [];
    const nAttrs = Math.floor(rand() * 6);
    const keys = [...ATTRIBUTE_KEYS];
    for (let j = keys.length - 1; j > 0; j--) {
      const k = Math.floor(rand() * (j + 1));
      [keys[j], keys[k]] = [keys[k], keys[j]];
    }
    keys.length = nAttrs;
    for (const [entityId, key] of keys) {
      const r = rand();
      const value = r < 0.45 ? str() : r < 0.8 ? pick(NUMBERS) : rand() < 0.5;
      attributes.push({ entityId, key, value });
    }
    const base = {
      timestamp: ts,
      uuid: uuidFrom(rand),
      context: { ...pool[Math.floor(rand() * pool.length)] },
      user: { id: rand() < trickyRate ? `visitor-${pick(TRICKY_STRINGS)}-${i}` : `visitor-${digits(6)}`, attributes },
    };
    if (rand() < conversionRate) {
      const [id, key] = pick(EVENT_KEYS);
      const r = rand();
      let tags;
      let revenue = null;
      let value = null;
      if (r < 0.15) tags = undefined;
      else if (r < 0.2) tags = {};
      else {
        tags = {};
        if (rand() < 0.6) tags.revenue = revenue = Math.floor(rand() * 100000);
        if (rand() < 0.5) tags.value = value = Math.round(rand() * 10000) / 100;
        if (rand() < 0.5) tags.category = str();
        if (rand() < 0.3) tags.quantity = 1 + Math.floor(rand() * 5);
        if (rand() < 0.2) tags.coupon = rand() < 0.5;
        if (rand() < 0.15) tags.items = [{ sku: `sku-${digits(4)}`, qty: 2 }, { sku: str(), qty: 1.5 }];
      }
      events.push({ type: 'conversion', ...base, event: { id, key }, revenue, value, tags });
    } else {
      const experimentId = digits(11);
      const experimentKey = `exp_${digits(3)}`;
      const ruleType = pick(RULE_TYPES);
      const r = rand();
      // Layer: mostly numeric ids; the SDK sends '' for holdouts and null without experiment.
      const layer = ruleType === 'holdout' ? { id: '' } : r < 0.9 ? { id: digits(11) } : r < 0.95 ? { id: null } : null;
      const v = rand();
      const variationKey = pick(['on', 'off', 'control', 'treatment', 'variation_1']);
      // Variation ids: numeric (kept by the SDK) or not (sent as null), or no variation.
      const variation = v < 0.7 ? { id: digits(11), key: variationKey } : v < 0.85 ? { id: `${variationKey}_${digits(3)}`, key: variationKey } : v < 0.93 ? { id: null, key: '' } : null;
      const event = {
        type: 'impression',
        ...base,
        layer,
        experiment: rand() < 0.95 ? { id: experimentId, key: experimentKey } : null,
        variation,
        ruleKey: experimentKey,
        flagKey: rand() < 0.1 ? `flag_${pick(TRICKY_STRINGS)}` : `flag_${digits(3)}`,
        ruleType,
        enabled: rand() < 0.7,
      };
      if (rand() < 0.15) event.cmabUuid = uuidFrom(rand);
      events.push(event);
    }
  }
  return events;
}

const CTX = CONTEXTS[0];

// 12 hex digits from a name (FNV-1a, 48 bits), so every edge case gets its own uuid.
function hex12(name) {
  let h = 0xcbf29ce484222325n;
  for (const ch of name) h = ((h ^ BigInt(ch.codePointAt(0))) * 0x100000001b3n) & 0xffffffffffffffffn;
  return (h & 0xffffffffffffn).toString(16).padStart(12, '0');
}
const ts0 = 1700000000000;

function imp(name, overrides = {}, contextOverrides) {
  return {
    name,
    event: {
      type: 'impression',
      timestamp: ts0 + name.length * 1000 + 17,
      uuid: `7f0c5d7e-3b1a-4c2e-9a0b-${hex12(name)}`,
      context: contextOverrides === undefined ? { ...CTX } : contextOverrides,
      user: { id: 'visitor-1', attributes: [{ entityId: '10401066117', key: 'plan', value: 'pro' }] },
      layer: { id: '20322860341' },
      experiment: { id: '20312451137', key: 'checkout_test' },
      variation: { id: '20343060159', key: 'treatment' },
      ruleKey: 'checkout_test',
      flagKey: 'checkout_flow',
      ruleType: 'feature-test',
      enabled: true,
      ...overrides,
    },
  };
}

function conv(name, overrides = {}, contextOverrides) {
  return {
    name,
    event: {
      type: 'conversion',
      timestamp: ts0 + name.length * 1000 + 29,
      uuid: `1a2b3c4d-5e6f-4a1b-8c2d-${hex12(name)}`,
      context: contextOverrides === undefined ? { ...CTX } : contextOverrides,
      user: { id: 'buyer-1', attributes: [] },
      event: { id: '15073540046', key: 'purchase' },
      revenue: 4200,
      value: 3.14,
      tags: { revenue: 4200, value: 3.14, category: 'shoes' },
      ...overrides,
    },
  };
}

/**
 * A fixed list of `{ name, event }` covering every rule of the log-tier builder
 * (campaign/variation id normalisation, optional keys, tags, escaping, contexts).
 */
export function edgeCaseEvents() {
  return [
    // ---- impressions: ids and their normalisation
    imp('imp-basic', {
      user: {
        id: 'visitor-basic',
        attributes: [
          { entityId: '10401066117', key: 'plan', value: 'pro' },
          { entityId: '10401066119', key: 'age', value: 34 },
          { entityId: '10401066122', key: 'score', value: 0.75 },
          { entityId: '10401066120', key: 'is_vip', value: true },
          { entityId: '10401066121', key: 'newsletter', value: false },
        ],
      },
    }),
    imp('imp-enabled-false-rollout', { enabled: false, ruleType: 'rollout', ruleKey: 'default-rollout-123', user: { id: 'v2', attributes: [] } }),
    imp('imp-enabled-undefined', { enabled: undefined }),
    imp('imp-variation-id-nonnumeric', { variation: { id: 'var_abc', key: 'treatment' } }),
    imp('imp-variation-id-mixed', { variation: { id: '123a', key: 'treatment' } }),
    imp('imp-variation-id-negative', { variation: { id: '-12', key: 'treatment' } }),
    imp('imp-variation-id-zero', { variation: { id: '0', key: 'zero' } }),
    imp('imp-variation-id-empty', { variation: { id: '', key: 'empty' } }),
    imp('imp-variation-id-null', { variation: { id: null, key: 'off' } }),
    imp('imp-variation-null', { variation: null }),
    imp('imp-variation-missing', { variation: undefined }),
    imp('imp-variation-key-missing', { variation: { id: '20343060159' } }),
    imp('imp-layer-null', { layer: null }),
    imp('imp-layer-missing', { layer: undefined }),
    imp('imp-layer-id-empty-holdout', { layer: { id: '' }, ruleType: 'holdout', ruleKey: 'holdout_1' }),
    imp('imp-layer-id-null', { layer: { id: null } }),
    imp('imp-layer-id-null-experiment-null', { layer: { id: null }, experiment: null, variation: null, ruleKey: '', ruleType: 'rollout', enabled: false }),
    imp('imp-experiment-null', { experiment: null }),
    imp('imp-experiment-id-null', { experiment: { id: null, key: '' } }),
    imp('imp-cmab', { ruleType: 'experiment', cmabUuid: '5b8e1a2c-7d3f-4e9a-b1c6-0f2d4e6a8c0e' }),
    imp('imp-cmab-empty', { cmabUuid: '' }),
    imp('imp-rule-flag-empty', { ruleKey: '', flagKey: '', ruleType: 'experiment' }),
    imp('imp-rule-flag-missing', { ruleKey: undefined, flagKey: undefined, ruleType: undefined }),
    // ---- strings: escaping and UTF-8
    imp('imp-unicode-strings', {
      user: {
        id: 'visiteur-é-東京-🎉',
        attributes: [
          { entityId: '10401066121', key: 'pays', value: 'Österreich' },
          { entityId: '10401066123', key: 'quote"key', value: 'say "hi" \\ back\\slash' },
          { entityId: '10401066118', key: 'ctrl', value: 'a\u0000b\u0001c\u0002d\u001fe\u007ff\b\f\n\r\t' },
          { entityId: '10401066124', key: 'seps', value: '\u2028\u2029</script>&<>\'' },
          { entityId: '10401066125', key: 'astral', value: '𝄞 👩‍👩‍👧‍👦 🇨🇭' },
        ],
      },
      flagKey: 'flag_ä',
      ruleKey: 'rule "quoted"',
      variation: { id: '20343060159', key: 'variación\\1' },
    }),
    imp('imp-lone-surrogate', { user: { id: 'lone-\ud800-surrogate', attributes: [{ entityId: '1', key: 'k\udfff', value: 'v\ud83d' }] } }),
    imp('imp-numbers', {
      user: {
        id: 'numbers',
        attributes: [
          { entityId: '1', key: 'zero', value: 0 },
          { entityId: '2', key: 'negzero', value: -0 },
          { entityId: '3', key: 'neg', value: -1.5 },
          { entityId: '4', key: 'big', value: 1e21 },
          { entityId: '5', key: 'tiny', value: 1e-7 },
          { entityId: '6', key: 'pow53', value: 2 ** 53 },
          { entityId: '7', key: 'max', value: Number.MAX_VALUE },
          { entityId: '8', key: 'sum', value: 0.1 + 0.2 },
          { entityId: '9', key: 'int', value: 25 },
          { entityId: '10', key: 'min', value: Number.MIN_VALUE },
          { entityId: '11', key: 'large', value: 123456789012345680000 },
        ],
      },
    }),
    imp('imp-bucketing-id', { user: { id: 'v-b', attributes: [{ entityId: '$opt_bucketing_id', key: '$opt_bucketing_id', value: 'bucket-7' }] } }),
    // ---- contexts
    imp('imp-botfiltering-true', {}, { ...CTX, botFiltering: true }),
    imp('imp-botfiltering-undefined', {}, { ...CTX, botFiltering: undefined }),
    imp('imp-anonymizeip-false', {}, { ...CTX, anonymizeIP: false }),
    imp('imp-anonymizeip-undefined', {}, { ...CTX, anonymizeIP: undefined }),
    imp('imp-region-eu', {}, { ...CTX, region: 'EU' }),
    imp('imp-region-us', {}, { ...CTX, region: 'US' }),
    imp('imp-region-lowercase-eu', {}, { ...CTX, region: 'eu' }),
    imp('imp-client-custom', {}, { ...CTX, clientName: 'javascript-sdk/my-wrapper "x"', clientVersion: '5.3.4-beta.1+é' }),
    imp('imp-revision-missing', {}, { accountId: '1', projectId: '2', clientName: 'node-sdk', clientVersion: '6.6.1', anonymizeIP: true, botFiltering: false }),
    imp('imp-context-unicode', {}, { ...CTX, accountId: 'acc-ü', projectId: 'proj-"\\', revision: 'rév' }),
    // ---- conversions
    conv('conv-basic'),
    conv('conv-tags-undefined', { tags: undefined, revenue: null, value: null }),
    conv('conv-tags-null', { tags: null, revenue: null, value: null }),
    conv('conv-tags-empty', { tags: {}, revenue: null, value: null }),
    conv('conv-revenue-undefined', { tags: { category: 'x' }, revenue: undefined, value: undefined }),
    conv('conv-revenue-string', { tags: { revenue: '1999' }, revenue: 1999, value: null }),
    conv('conv-value-string', { tags: { value: '2.5' }, revenue: null, value: 2.5 }),
    conv('conv-revenue-zero', { tags: { revenue: 0, value: 0 }, revenue: 0, value: 0 }),
    conv('conv-revenue-nan-string', { tags: { revenue: 'abc', value: 'n/a' }, revenue: null, value: null }),
    conv('conv-negative', { tags: { revenue: -500, value: -0.5 }, revenue: -500, value: -0.5 }),
    conv('conv-float-revenue', { tags: { revenue: 12.75 }, revenue: 12.75, value: null }),
    conv('conv-revenue-beside-only', { tags: undefined, revenue: 100, value: 7 }),
    conv('conv-big-numbers', { tags: { revenue: 1e21, value: 1e-7, neg0: -0, max: Number.MAX_SAFE_INTEGER }, revenue: 1e21, value: 1e-7 }),
    conv('conv-nested-tags', {
      tags: {
        revenue: 300,
        nested: { a: [1, 'x', true, null, { b: 'ü' }], empty: {}, arr: [] },
        'ü-key': 'välue',
        'q"b\\': 'x\ny',
        '2': 'numeric key',
        '1': 'sorted first',
        skipped: undefined,
        when: new Date(0),
      },
      revenue: 300,
      value: null,
    }),
    conv('conv-unicode-event', { event: { id: '15073540049', key: 'checkout_ünïcödé "q"' }, user: { id: '顧客-1', attributes: [{ entityId: '10401066121', key: 'country', value: 'España' }] } }),
    conv('conv-attributes-mixed', {
      user: {
        id: 'buyer-2',
        attributes: [
          { entityId: '10401066117', key: 'plan', value: 'enterprise' },
          { entityId: '10401066119', key: 'age', value: 51 },
          { entityId: '10401066120', key: 'is_vip', value: false },
        ],
      },
    }),
    conv('conv-eu-botfiltering', {}, { ...CTX, region: 'EU', botFiltering: true, anonymizeIP: false }),
    conv('conv-botfiltering-undefined', {}, { ...CTX, botFiltering: undefined }),
    conv('conv-client-custom', {}, { ...CTX, clientName: 'react-sdk', clientVersion: '3.2.3' }),
  ];
}

/** The SDK's batching key (areEventContextsEqual): events with different keys never share a batch. */
export function contextKey(event) {
  const c = event.context;
  return JSON.stringify([c.region || 'US', c.accountId, c.projectId, c.clientName, c.clientVersion, c.revision, c.anonymizeIP, c.botFiltering]);
}

/** Splits events into single-context groups, keeping their order inside each group. */
export function groupByContext(events) {
  const groups = new Map();
  for (const e of events) {
    const k = contextKey(e);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(e);
  }
  return [...groups.values()];
}
