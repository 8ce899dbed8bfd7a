// Browsers, before the wasm module is ready: packs a UserEvent with the glue's packer
// (the one copy bep.js uses too) and checks every leaf against the rules the core
// applies to packed events (src/core/packed.rs: `parse`), with the same TypeError
// messages, so that an invalid event throws from `process()` at once whether or not
// the module is ready. Must not: import the wasm glue (dist/bep.js), hold state, know
// about queues or storage. The one rule it cannot apply is the size of the event as a
// batch of one (`maxPayloadBytes`): the core reports that when it takes the event.
import { pack } from './dist/glue/packer.js';

const SEP = '\u0001';
const SUB = '\u0002';

/** The JSON kind of a packed field, judged as `Token::of` does. */
function token(f) {
  if (f === '') return 'absent';
  const c = f[0];
  if (c === '"') return f.length >= 2 && f[f.length - 1] === '"' ? 'string' : 'other';
  if (c === '{') return f[f.length - 1] === '}' ? 'object' : 'other';
  if (/^[-+.eE0-9]+$/.test(f) && /[0-9]/.test(f)) return 'number';
  if (f === 'null') return 'null';
  if (f === 'true' || f === 'false') return 'bool';
  return 'other';
}

// Rule name -> [kinds allowed, description], as in `Rule::allows` / `Rule::describe`.
const RULES = {
  s: [['string'], 'a string'],
  os: [['absent', 'null', 'string'], 'a string, null or undefined'],
  id: [['absent', 'null', 'string', 'number'], 'a string, a number, null or undefined'],
  ob: [['absent', 'null', 'bool'], 'a boolean, null or undefined'],
  on: [['absent', 'null', 'number'], 'a finite number, null or undefined'],
  ts: [['absent', 'number'], 'a finite number >= 0 (ms since epoch) or undefined'],
  av: [['string', 'number', 'bool'], 'a string, a finite number or a boolean'],
  oo: [['absent', 'null', 'object'], 'an object, null or undefined'],
};
const CONTEXT = [
  ['context.region', 'os'], ['context.accountId', 's'], ['context.projectId', 's'], ['context.revision', 'os'],
  ['context.clientName', 'os'], ['context.clientVersion', 'os'], ['context.anonymizeIP', 'ob'], ['context.botFiltering', 'ob'],
];
const COMMON = [['uuid', 's'], ['timestamp', 'ts'], ['user.id', 's']];
// [index in the data part, name, rule]
const IMPRESSION = [
  [4, 'layer.id', 'id'], [5, 'experiment.id', 'id'], [7, 'variation.id', 'id'], [8, 'variation.key', 'os'], [9, 'ruleKey', 'os'],
  [10, 'flagKey', 'os'], [11, 'ruleType', 'os'], [12, 'enabled', 'ob'], [13, 'cmabUuid', 'os'],
];
const CONVERSION = [[4, 'event.id', 's'], [5, 'event.key', 's'], [6, 'revenue', 'on'], [7, 'value', 'on'], [8, 'tags', 'oo']];

/** What a field was, as the core's messages show it (`shown`). */
function shown(f) {
  if (f === '') return 'undefined';
  const chars = [...f];
  return chars.length > 48 ? chars.slice(0, 48).join('') + '…' : f;
}

function check(f, name, rule) {
  const [kinds, text] = RULES[rule];
  if (!kinds.includes(token(f))) throw new TypeError(`${name} must be ${text}, got ${shown(f)}`);
}

/** Checks a packed event as the core does; throws its TypeError. */
export function checkPacked(s) {
  const f = s.split(SEP);
  const type = f[8];
  const rules = type === '"impression"' ? IMPRESSION : type === '"conversion"' ? CONVERSION : undefined;
  if (!rules) throw new TypeError(`type must be 'impression' or 'conversion', got ${shown(type ?? '')}`);
  CONTEXT.forEach(([name, rule], i) => check(f[i], name, rule));
  const d = f.slice(9);
  COMMON.forEach(([name, rule], i) => check(d[i], name, rule));
  if (d[1].startsWith('-')) check('-', 'timestamp', 'ts');
  if (d[3] !== '') {
    const tokens = d[3].split(SUB);
    tokens.forEach((t, i) => check(t, `user.attributes[${(i / 3) | 0}].${['entityId', 'key', 'value'][i % 3]}`, ['s', 's', 'av'][i % 3]));
    if (tokens.length % 3) throw new TypeError(`user.attributes must be a list of { entityId, key, value }, got ${shown(d[3])}`);
  }
  if (rules === IMPRESSION && d[6] !== '' && d[6] !== '1') check('', 'variation', 'oo');
  for (const [i, name, rule] of rules) check(d[i], name, rule);
}

/**
 * Packs `event` as `process()` would (the packer stamps an event without a timestamp
 * with `Date.now()`, so it keeps the time it was processed at); throws the TypeError
 * of the first rule it breaks.
 */
export function packEarly(event) {
  const s = pack(event);
  checkPacked(s);
  return s;
}

/** UTF-8 length of a packed event (what `maxQueueBytes` counts). */
export function utf8Length(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) n += c > 0x7ff && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return n;
}
