// Owns the Optimizely SDK adapter's JS half: `unbatch` takes an already formatted
// LogEvent apart into packed events, and errors name the LogEvent path the caller
// passed (`wireField`). Must not: batch, send or keep anything (the Rust side
// re-batches what it returns).

import { fail, object } from './checks.js';
import { pack } from './packer.js';

const BOT_FILTERING = '$opt_bot_filtering';
const EU_ENDPOINT = 'https://eu.logx.optimizely.com/v1/events';

/**
 * Takes apart an already formatted Optimizely LogEvent (`{ url, httpVerb, params }`, as
 * any Optimizely SDK's event processor emits it) into packed UserEvents, one per
 * event, so that they are batched again with everything else. Re-batching them
 * renders the same visitor JSON the SDK would have sent.
 */
let unbatched = [];

const WIRE = {
  'context.region': () => 'logEvent.url',
  'context.accountId': () => 'logEvent.params.account_id',
  'context.projectId': () => 'logEvent.params.project_id',
  'context.revision': () => 'logEvent.params.revision',
  'context.clientName': () => 'logEvent.params.client_name',
  'context.clientVersion': () => 'logEvent.params.client_version',
  'context.anonymizeIP': () => 'logEvent.params.anonymize_ip',
  'context.botFiltering': (w) => `${w.visitor}.attributes[${w.bot}].value`,
  'user.id': (w) => `${w.visitor}.visitor_id`,
  uuid: (w) => `${w.event}.uuid`,
  timestamp: (w) => `${w.event}.timestamp`,
  'layer.id': (w) => `${w.decision}.campaign_id`,
  'experiment.id': (w) => `${w.decision}.experiment_id`,
  'variation.id': (w) => `${w.decision}.variation_id`,
  'variation.key': (w) => `${w.decision}.metadata.variation_key`,
  ruleKey: (w) => `${w.decision}.metadata.rule_key`,
  flagKey: (w) => `${w.decision}.metadata.flag_key`,
  ruleType: (w) => `${w.decision}.metadata.rule_type`,
  enabled: (w) => `${w.decision}.metadata.enabled`,
  cmabUuid: (w) => `${w.decision}.metadata.cmab_uuid`,
  'event.id': (w) => `${w.event}.entity_id`,
  'event.key': (w) => `${w.event}.key`,
  revenue: (w) => `${w.event}.revenue`,
  value: (w) => `${w.event}.value`,
  tags: (w) => `${w.event}.tags`,
};

/** The LogEvent path of a UserEvent field of the event found at `where`. */
function wirePath(where, field) {
  const attr = /^user\.attributes\[(\d+)\]\.(entityId|key|value)$/.exec(field);
  if (attr) return `${where.visitor}.attributes[${attr[1]}].${{ entityId: 'entity_id', key: 'key', value: 'value' }[attr[2]]}`;
  return WIRE[field] ? WIRE[field](where) : field;
}

/**
 * The LogEvent path of a UserEvent field of the `index`-th event of the last
 * `unbatch`, so that errors name what the caller passed
 * (`logEvent.params.visitors[0].visitor_id`, not `user.id`).
 */
export function wireField(index, field) {
  return unbatched[index] ? wirePath(unbatched[index], field) : field;
}

/** `pack`, with a structural error renamed to the LogEvent path of its field. */
function packAt(where, event) {
  unbatched.push(where);
  try {
    return pack(event);
  } catch (e) {
    const m = /^(\S+) must be /.exec(e.message);
    if (e instanceof TypeError && m) throw new TypeError(wirePath(where, m[1]) + e.message.slice(m[1].length));
    throw e;
  }
}

/**
 * A promise rejected with `error`, already marked handled: an `await` or `.catch` on it
 * still gets the error, but nobody awaiting it (SDK 6's forwarding processor drops
 * the promise) is not an unhandled rejection, which ends a Node process by default.
 */
export function refused(error) {
  const p = Promise.reject(error);
  p.catch(() => {});
  return p;
}

export function unbatch(logEvent) {
  unbatched = [];
  object(logEvent, 'logEvent', false);
  const b = object(logEvent.params, 'logEvent.params', false);
  if (!Array.isArray(b.visitors)) throw fail('logEvent.params.visitors', 'an array', b.visitors);
  const region = logEvent.url === EU_ENDPOINT ? 'EU' : undefined;
  const packed = [];
  b.visitors.forEach((visitor, vi) => {
    const where = `logEvent.params.visitors[${vi}]`;
    const v = object(visitor, where, false);
    const attrs = v.attributes === undefined ? [] : v.attributes;
    if (!Array.isArray(attrs)) throw fail(`${where}.attributes`, 'an array', attrs);
    let botFiltering;
    let userAttrs = attrs;
    const last = attrs[attrs.length - 1];
    if (last && last.entity_id === BOT_FILTERING && last.key === BOT_FILTERING) {
      botFiltering = last.value;
      userAttrs = attrs.slice(0, -1);
    }
    const context = {
      region,
      accountId: b.account_id,
      projectId: b.project_id,
      revision: b.revision,
      clientName: b.client_name,
      clientVersion: b.client_version,
      anonymizeIP: b.anonymize_ip,
      botFiltering,
    };
    const user = {
      id: v.visitor_id,
      attributes: userAttrs.map((a, ai) => {
        const at = object(a, `${where}.attributes[${ai}]`, false);
        return { entityId: at.entity_id, key: at.key, value: at.value };
      }),
    };
    if (!Array.isArray(v.snapshots)) throw fail(`${where}.snapshots`, 'an array', v.snapshots);
    v.snapshots.forEach((snapshot, si) => {
      const s = object(snapshot, `${where}.snapshots[${si}]`, false);
      if (!Array.isArray(s.events)) throw fail(`${where}.snapshots[${si}].events`, 'an array', s.events);
      if (s.decisions !== undefined) {
        if (!Array.isArray(s.decisions) || s.decisions.length !== 1 || s.events.length !== 1) {
          throw fail(`${where}.snapshots[${si}]`, 'a decision snapshot with one decision and one event', `${s.decisions?.length} decisions`);
        }
        const d = object(s.decisions[0], `${where}.snapshots[${si}].decisions[0]`, false);
        const e = object(s.events[0], `${where}.snapshots[${si}].events[0]`, false);
        const m = object(d.metadata, `${where}.snapshots[${si}].decisions[0].metadata`, true) || {};
        const at = { visitor: where, decision: `${where}.snapshots[${si}].decisions[0]`, event: `${where}.snapshots[${si}].events[0]`, bot: attrs.length - 1 };
        packed.push(packAt(at, {
          type: 'impression', uuid: e.uuid, timestamp: e.timestamp, context, user,
          // campaign_id = layer || experiment || null on the way out: a layer id equal to
          // the campaign id and the experiment id as sent render the same JSON again.
          layer: { id: d.campaign_id },
          experiment: { id: d.experiment_id },
          variation: { id: d.variation_id, key: m.variation_key },
          ruleKey: m.rule_key, flagKey: m.flag_key, ruleType: m.rule_type,
          enabled: m.enabled, cmabUuid: m.cmab_uuid,
        }));
      } else {
        s.events.forEach((event, ei) => {
          const e = object(event, `${where}.snapshots[${si}].events[${ei}]`, false);
          const at = { visitor: where, event: `${where}.snapshots[${si}].events[${ei}]`, bot: attrs.length - 1 };
          packed.push(packAt(at, {
            type: 'conversion', uuid: e.uuid, timestamp: e.timestamp, context, user,
            event: { id: e.entity_id, key: e.key },
            revenue: e.revenue, value: e.value, tags: e.tags,
          }));
        });
      }
    });
  });
  return packed;
}
