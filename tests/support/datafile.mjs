// A small, real Optimizely datafile (v4) shared by the tests that drive the Optimizely
// JavaScript SDK 6 itself (tests/node/sdk-adapter.test.mjs, tests/workerd/sdk/), and the
// user flow they run against it. Plain JS with no imports, so it also bundles into a
// Worker.
//
// - one feature flag (`checkout_flow`) whose only rule is one A/B experiment
//   (`checkout_test`) with two variations with numeric ids, 50/50, so every decide()
//   sends one impression (numeric ids: the SDK sends them as `variation_id`, not null);
// - one event (`purchase`) attached to that experiment;
// - three attributes (`plan`, `age`, `is_vip`);
// - botFiltering and anonymizeIP on.
//
// SDK 6 has no `datafile` option: pass it as
// `createInstance({ projectConfigManager: createStaticProjectConfigManager({ datafile: JSON.stringify(datafile) }), ... })`.

export const FLAG_KEY = 'checkout_flow';
export const EXPERIMENT_KEY = 'checkout_test';
export const EVENT_KEY = 'purchase';

export const IDS = {
  accountId: '12133785640',
  projectId: '6460519658291200',
  revision: '73',
  flag: '30000001',
  rollout: '40000001',
  layer: '20322860341',
  experiment: '20312451137',
  treatment: '20343060159',
  control: '20343060160',
  event: '15073540046',
  attributes: { plan: '10401066117', age: '10401066119', is_vip: '10401066120' },
};

export const datafile = {
  version: '4',
  revision: IDS.revision,
  accountId: IDS.accountId,
  projectId: IDS.projectId,
  sdkKey: 'sdk-adapter-test',
  environmentKey: 'production',
  anonymizeIP: true,
  botFiltering: true,
  sendFlagDecisions: true,
  attributes: Object.entries(IDS.attributes).map(([key, id]) => ({ id, key })),
  events: [{ id: IDS.event, key: EVENT_KEY, experimentIds: [IDS.experiment] }],
  audiences: [],
  typedAudiences: [],
  groups: [],
  variables: [],
  integrations: [],
  experiments: [
    {
      id: IDS.experiment,
      key: EXPERIMENT_KEY,
      layerId: IDS.layer,
      status: 'Running',
      audienceIds: [],
      audienceConditions: [],
      forcedVariations: {},
      trafficAllocation: [
        { entityId: IDS.treatment, endOfRange: 5000 },
        { entityId: IDS.control, endOfRange: 10000 },
      ],
      variations: [
        { id: IDS.treatment, key: 'treatment', featureEnabled: true, variables: [] },
        { id: IDS.control, key: 'control', featureEnabled: false, variables: [] },
      ],
    },
  ],
  featureFlags: [{ id: IDS.flag, key: FLAG_KEY, rolloutId: IDS.rollout, experimentIds: [IDS.experiment], variables: [] }],
  rollouts: [{ id: IDS.rollout, experiments: [] }],
};

/** The datafile as the JSON string `createStaticProjectConfigManager` takes. */
export const datafileJSON = JSON.stringify(datafile);

/**
 * The deterministic user flow the SDK tests run: user `i` gets these attributes (two
 * known ones of different types, plus one the datafile does not know, which the SDK
 * drops), decides the flag once (one impression) and tracks the event once, every third
 * user twice (so the total is not a multiple of the batch size).
 */
export function flowUsers(n, prefix = 'user') {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    attributes: { plan: i % 2 ? 'pro' : 'free', age: 20 + (i % 50), is_vip: i % 5 === 0, not_in_datafile: 'dropped' },
    tracks: Array.from({ length: i % 3 === 0 ? 2 : 1 }, (_, k) => ({ revenue: 1000 * i + 99 + k, category: `cat-${i}-${k}` })),
  }));
}

/**
 * Runs the flow on an SDK client (after `onReady()`): decide then trackEvent(s), user by
 * user. Returns the number of events the SDK should have produced (impressions +
 * conversions).
 */
export function runFlow(client, users) {
  let events = 0;
  for (const u of users) {
    const user = client.createUserContext(u.id, u.attributes);
    user.decide(FLAG_KEY);
    events++;
    for (const tags of u.tracks) {
      user.trackEvent(EVENT_KEY, tags);
      events++;
    }
  }
  return events;
}
