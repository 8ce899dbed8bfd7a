// The live demo (no framework, no bundler). The package is the built npm package,
// served by www/server.mjs at /pkg/; `browser.js` instantiates the wasm itself.

const $ = (sel) => document.querySelector(sel);
const nf = new Intl.NumberFormat('en-US');
const fmt = (n) => nf.format(n);
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------
// Settings of every processor this page creates (the visitor edits the first three).
const RETRY = { maxRetries: 10, initialBackoff: 250, maxBackoff: 4000 };
const DISPATCH_TIMEOUT = 5000;
const SESSION = globalThis.crypto?.randomUUID?.() ?? `s-${Date.now()}-${Math.random().toString(36).slice(2)}`;
const ENDPOINT = new URL(`/collector/v1/events?session=${SESSION}`, location.href).href;
const WINDOW_MAX_MS = 60_000; // the timeline shows at most the last minute…
const WINDOW_MIN_MS = 20_000; // …and starts at 20 s, growing with the page's age
const STARTED = Date.now();
const BUCKET_MS = 500;
const TABLE_ROWS = 12;
const UNLOAD_KEY = 'bep-demo-unload';

// ---------------------------------------------------------------------------------------
// Events: the Optimizely UserEvent shape, one shared context so batches fill up.
const CONTEXT = {
  accountId: '12345',
  projectId: '678',
  revision: '42',
  clientName: 'javascript-sdk',
  clientVersion: '6.6.1',
  anonymizeIP: true,
  botFiltering: false,
};
const FLAGS = [
  { flagKey: 'new_checkout', ruleKey: 'checkout_redesign', ruleType: 'feature-test', layer: '20322860341', experiment: '20312451137', variations: [['20343060159', 'control'], ['20343060160', 'treatment']] },
  { flagKey: 'search_ranking', ruleKey: 'ranking_v2', ruleType: 'experiment', layer: '20322860342', experiment: '20312451138', variations: [['20343060161', 'off'], ['20343060162', 'on']] },
  { flagKey: 'free_shipping_banner', ruleKey: 'default-rollout-7', ruleType: 'rollout', layer: '20322860343', experiment: '20312451139', variations: [['20343060163', 'on']] },
];
const GOALS = [['15073540046', 'purchase'], ['15073540047', 'add_to_cart'], ['15073540048', 'sign_up']];
const PLANS = ['free', 'pro', 'enterprise'];
const DEVICES = ['desktop', 'mobile', 'tablet', 'mobile'];
const COUNTRIES = ['CH', 'DE', 'FR', 'JP', 'US', 'BR', 'IN'];
const pick = (list) => list[Math.floor(Math.random() * list.length)];

function makeEvent(type = Math.random() < 0.6 ? 'impression' : 'conversion') {
  const n = Math.floor(Math.random() * 500);
  const user = {
    id: `visitor-${String(n).padStart(3, '0')}`,
    attributes: [
      { entityId: '10401066117', key: 'plan', value: PLANS[n % PLANS.length] },
      { entityId: '10401066118', key: 'device', value: DEVICES[n % DEVICES.length] },
      { entityId: '10401066121', key: 'country', value: COUNTRIES[n % COUNTRIES.length] },
    ],
  };
  if (type === 'impression') {
    const f = pick(FLAGS);
    const [variationId, variationKey] = pick(f.variations);
    return {
      type, context: CONTEXT, user,
      layer: { id: f.layer }, experiment: { id: f.experiment, key: f.ruleKey }, variation: { id: variationId, key: variationKey },
      ruleKey: f.ruleKey, flagKey: f.flagKey, ruleType: f.ruleType, enabled: variationKey !== 'off' && variationKey !== 'control',
    };
  }
  const [id, key] = pick(GOALS);
  if (key === 'purchase') {
    const revenue = 500 + Math.floor(Math.random() * 20000);
    return { type, context: CONTEXT, user, event: { id, key }, revenue, value: null, tags: { revenue, category: pick(['shoes', 'books', 'garden']) } };
  }
  return { type, context: CONTEXT, user, event: { id, key }, revenue: null, value: null, tags: {} };
}

// ---------------------------------------------------------------------------------------
// State.
let BatchEventProcessor;
const procs = []; // every processor of this page: { p, gen, options, state, summary }
let current = null;
let generation = 0;
let batchSeq = 0;
const batches = []; // LogEvents seen by onEventDispatch, newest last (kept for the table)
const byFirstUuid = new Map(); // first event uuid of a batch -> batch (attempt matching)
const sentPoints = []; // { t, events } for the chart
const colPoints = []; // { t, status, events } for the chart (collector answers)
const markers = []; // { t, label }
let collector = null; // last /collector/stats answer
let colSince = 0;
let lastMode = null;
let mismatchSince = 0;
let previousPage = null; // what the previous page left behind at pagehide
let baseline = {}; // collector sessions when this page started
const sessions = new Set([SESSION]); // endpoints (sessions) this page's batches went to
let recovered = 0; // events of earlier pages this page's processors re-sent

// ---------------------------------------------------------------------------------------
// Processors.
function readOptions() {
  const form = new FormData($('#options'));
  return {
    batchSize: Number(form.get('batchSize')),
    flushInterval: Number(form.get('flushInterval')),
    maxQueueSize: Number(form.get('maxQueueSize')),
  };
}

function startProcessor(options) {
  let p;
  try {
    p = new BatchEventProcessor({ ...options, endpoint: ENDPOINT, retry: RETRY, dispatchTimeout: DISPATCH_TIMEOUT });
  } catch (e) {
    $('#options-error').textContent = `${e.name}: ${e.message}`;
    $('#options-error').hidden = false;
    return false;
  }
  $('#options-error').hidden = true;
  const entry = { p, gen: ++generation, options, state: 'open', summary: null };
  p.onEventDispatch((logEvent) => onBatch(entry, logEvent));
  p.onDispatchError((err) => log(`<span class="error">processor #${entry.gen} gave up ${fmt(err.events)} events (${esc(err.reason)}, status ${err.status ?? 'none'}): ${esc(err.message)}</span>`));
  const old = current;
  procs.push(entry);
  current = entry;
  if (old && old.state === 'open') retire(old, `replaced by #${entry.gen}`);
  const desc = `batchSize ${options.batchSize}, flushInterval ${fmt(options.flushInterval)} ms, maxQueueSize ${fmt(options.maxQueueSize)}`;
  log(`processor <b>#${entry.gen}</b> started: ${desc}`);
  if (old) {
    const changed = Object.keys(options).filter((k) => options[k] !== old.options[k]);
    const what = changed.map((k) => `${k} ${k === 'flushInterval' ? `${options[k] / 1000} s` : fmt(options[k])}`).join(', ');
    markers.push({ t: Date.now(), label: what || `processor #${entry.gen}` });
  }
  renderOptionsCode(options);
  setOpenUi(true);
  return true;
}

async function retire(entry, why) {
  if (entry.state !== 'open') return entry.summary;
  entry.state = 'closing';
  const started = performance.now();
  const summary = await entry.p.close();
  entry.state = 'closed';
  entry.summary = summary;
  const ms = Math.round(performance.now() - started);
  const cls = summary.failed || summary.pending ? 'error' : 'ok';
  log(`processor #${entry.gen} closed (${esc(why)}) after ${fmt(ms)} ms: <span class="${cls}">dispatched ${fmt(summary.dispatched)}, failed ${fmt(summary.failed)}, pending ${fmt(summary.pending)}</span>`);
  return summary;
}

function totals() {
  const t = { queued: 0, inFlight: 0, dispatched: 0, batches: 0, retried: 0, failed: 0, dropped: 0, bytesSent: 0 };
  for (const e of procs) {
    const s = e.p.stats();
    for (const k in t) t[k] += s[k] ?? 0;
  }
  return t;
}

function onBatch(entry, logEvent) {
  const params = logEvent.params;
  let events = 0;
  let impressions = 0;
  let first = null;
  for (const v of params.visitors) {
    for (const s of v.snapshots) {
      for (const e of s.events) {
        events++;
        if (e.key === 'campaign_activated') impressions++;
        first ??= e.uuid;
      }
    }
  }
  const now = Date.now();
  const session = new URL(logEvent.url).searchParams.get('session');
  if (session && session !== SESSION) {
    // A batch an earlier page left unconfirmed in storage, recovered by this processor.
    if (!sessions.has(session)) log(`recovering batches an earlier page left unconfirmed in <code>localStorage</code> (session ${esc(session.slice(0, 8))}…)`);
    sessions.add(session);
    recovered += events;
  }
  const b = {
    seq: ++batchSeq, t: now, gen: entry.gen, proc: entry, events, impressions, bytes: encoder.encode(logEvent.body).length,
    first, attempts: [], logEvent,
  };
  batches.push(b);
  if (first) byFirstUuid.set(first, b);
  sentPoints.push({ t: now, events });
  while (batches.length > 200) {
    const old = batches.shift();
    byFirstUuid.delete(old.first);
  }
}

// ---------------------------------------------------------------------------------------
// Generating events.
let generated = 0;
function emit(n, type) {
  if (!current || current.state !== 'open') return { accepted: 0, dropped: 0 };
  let accepted = 0;
  for (let i = 0; i < n; i++) {
    if (current.p.process(makeEvent(type))) accepted++;
  }
  generated += n;
  return { accepted, dropped: n - accepted };
}

let streamTimer = null;
let streamCarry = 0;
function setStream(on) {
  clearInterval(streamTimer);
  streamTimer = null;
  $('#stream').checked = on;
  if (!on) return;
  streamCarry = 0;
  streamTimer = setInterval(() => {
    streamCarry += Number($('#stream-rate').value) / 10;
    const n = Math.floor(streamCarry);
    streamCarry -= n;
    if (n) emit(n);
  }, 100);
}

function setOpenUi(open) {
  for (const id of ['#one-impression', '#one-conversion', '#burst', '#stream', '#flush', '#reload']) $(id).disabled = !open;
  $('#close').disabled = false;
  $('#close').textContent = open ? 'close()' : 'new processor';
  $('#close').dataset.action = open ? 'close' : 'new';
  if (!open) setStream(false);
  $('#proc-note').textContent = open
    ? ''
    : 'This processor is closed: process() would throw. Start a new one to go on.';
}

// ---------------------------------------------------------------------------------------
// Collector.
async function setFault(mode) {
  const r = await fetch(`/collector/fault?mode=${encodeURIComponent(mode)}`, { method: 'POST' });
  const body = await r.json();
  applyMode(body.mode, body.label);
}

function applyMode(mode, label) {
  if (mode === lastMode) return;
  if (lastMode !== null) {
    markers.push({ t: Date.now(), label: mode === 'ok' ? 'healthy' : mode === 'slow' ? 'slow' : `fault ${mode}` });
    log(`collector is now <b>${esc(label)}</b>`);
  }
  lastMode = mode;
  for (const b of document.querySelectorAll('.segmented button')) b.classList.toggle('on', b.dataset.mode === mode);
  $('#mode-label').textContent = label;
  $('#mode-label').dataset.mode = mode;
}

let polling = false;
async function pollCollector() {
  if (polling) return;
  polling = true;
  try {
    const r = await fetch(`/collector/stats?since=${colSince}`, { cache: 'no-store', priority: 'high' });
    const s = await r.json();
    colSince = s.now;
    for (const e of s.recent) {
      if (!sessions.has(e.session)) continue;
      colPoints.push({ t: e.t + e.ms, status: e.status, events: e.events });
      const b = e.first && byFirstUuid.get(e.first);
      if (b) b.attempts.push(e.status);
    }
    collector = s;
    applyMode(s.mode, s.label);
  } catch {
    // The server went away: keep the last numbers.
  } finally {
    polling = false;
  }
}

// ---------------------------------------------------------------------------------------
// Rendering.
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function bytes(n) {
  if (n < 10_000) return `${fmt(n)} B`;
  if (n < 100_000) return `${(n / 1000).toFixed(1)} kB`;
  if (n < 1_000_000) return `${Math.round(n / 1000)} kB`;
  return `${(n / 1e6).toFixed(2)} MB`;
}

function clock(t, ms = true) {
  const d = new Date(t);
  const p = (x, w = 2) => String(x).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${ms ? '.' + p(d.getMilliseconds(), 3) : ''}`;
}

function setCounter(id, value, text = fmt(value)) {
  const el = document.getElementById(id);
  if (el.dataset.value === String(value)) return;
  el.dataset.value = String(value);
  el.textContent = text;
  if (text !== fmt(value)) el.title = `${fmt(value)} bytes`;
}

function log(html) {
  const li = document.createElement('li');
  li.innerHTML = `<time>${clock(Date.now(), false)}</time><span>${html}</span>`;
  const list = $('#log');
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

function renderOptionsCode(o) {
  const n = (v) => `<span class="n">${esc(fmt(v).replace(/,/g, '_'))}</span>`;
  $('#options-code').innerHTML = [
    `<span class="k">new</span> BatchEventProcessor({`,
    `  batchSize: ${n(o.batchSize)},`,
    `  flushInterval: ${n(o.flushInterval)},`,
    `  maxQueueSize: ${n(o.maxQueueSize)},`,
    `  endpoint: <span class="s">'/collector/v1/events'</span>,`,
    `  retry: {`,
    `    maxRetries: ${n(RETRY.maxRetries)},`,
    `    initialBackoff: ${n(RETRY.initialBackoff)},`,
    `    maxBackoff: ${n(RETRY.maxBackoff)},`,
    `  },`,
    `  dispatchTimeout: ${n(DISPATCH_TIMEOUT)},`,
    `  <span class="c">// defaults: flushOnHide: true,</span>`,
    `  <span class="c">// storage: localStorage</span>`,
    `})`,
  ].join('\n');
}

function renderCounters() {
  const t = totals();
  for (const k of ['queued', 'inFlight', 'dispatched', 'batches', 'retried', 'failed', 'dropped']) setCounter(`stat-${k}`, t[k]);
  setCounter('stat-bytesSent', t.bytesSent, bytes(t.bytesSent));
  const open = procs.filter((e) => e.state !== 'closed').length;
  $('#gen-label').textContent = current
    ? `processor #${current.gen}${current.state === 'open' ? '' : ` (${current.state})`} · ${procs.length} created, ${open} open · ${fmt(generated)} events generated`
    : '';

  // The collector's counters for this page: its session, plus what it re-sent for
  // earlier pages (to their sessions) since it started.
  const mine = { batches: 0, events: 0, bytes: 0, rejected: 0, abandoned: 0, duplicates: 0 };
  for (const id of sessions) {
    const now = collector?.sessions?.[id];
    if (!now) continue;
    for (const k in mine) mine[k] += (now[k] ?? 0) - (baseline[id]?.[k] ?? 0);
  }
  setCounter('col-events', mine.events);
  setCounter('col-batches', mine.batches);
  setCounter('col-bytes', mine.bytes, bytes(mine.bytes));
  setCounter('col-rejected', mine.rejected);
  setCounter('col-abandoned', mine.abandoned ?? 0);
  setCounter('col-duplicates', mine.duplicates ?? 0);

  // Do both sides agree?
  const agree = $('#agree');
  const moving = t.queued + t.inFlight;
  let state;
  let text;
  if (!collector) {
    state = 'idle';
    text = 'waiting for the collector';
  } else if (t.dispatched === 0 && mine.events === 0 && moving === 0) {
    state = 'idle';
    text = 'waiting for events';
  } else if (t.dispatched === mine.events && t.bytesSent === mine.bytes && moving === 0) {
    state = 'agree';
    text = `✓ agree: ${fmt(mine.events)} events, ${bytes(mine.bytes)} on both sides`;
  } else if (moving > 0) {
    state = 'moving';
    text = `${fmt(moving)} on their way · sent ${fmt(t.dispatched)}, received ${fmt(mine.events)}`;
  } else {
    mismatchSince ||= Date.now();
    state = Date.now() - mismatchSince > 2000 ? 'differ' : 'moving';
    text = state === 'differ' ? `differ: page ${fmt(t.dispatched)}, collector ${fmt(mine.events)}` : 'syncing…';
  }
  if (state !== 'differ' && text !== 'syncing…') mismatchSince = 0;
  if (agree.textContent !== text) agree.textContent = text;
  agree.dataset.state = state;

  if (collector) {
    const all = collector.events;
    const parts = [];
    if (all !== mine.events) parts.push(`All pages since the server started: ${fmt(all)} events in ${fmt(collector.batches)} batch${collector.batches === 1 ? '' : 'es'}.`);
    if (recovered) parts.push(`This page re-sent ${fmt(recovered)} events that earlier pages left unconfirmed in localStorage.`);
    if (previousPage) {
      const got = (collector.sessions?.[previousPage.session]?.events ?? 0) - previousPage.dispatched;
      parts.push(
        `Unload flush of the previous page: ${fmt(previousPage.pending)} events were queued or in flight at pagehide; ` +
          `the collector received ${fmt(Math.max(0, got))} of them afterwards.`,
      );
    }
    const note = parts.join(' ');
    if ($('#collector-note').textContent !== note) $('#collector-note').textContent = note;
  }
}

const STATUS_CLASS = (s) => (s === 200 ? 's200' : s === 429 ? 's429' : s === 0 ? 's0' : 's500');
const STATUS_TEXT = (s) => (s === 0 ? 'timeout' : String(s));

let renderedSeq = 0;
const rows = new Map(); // seq -> { tr, batch, key }
function renderTable() {
  const body = $('#batch-rows');
  const fresh = batches.filter((b) => b.seq > renderedSeq);
  if (fresh.length) {
    body.querySelector('tr.empty')?.remove();
    for (const b of fresh.slice(-TABLE_ROWS)) {
      const tr = document.createElement('tr');
      tr.className = 'fresh';
      const conv = b.events - b.impressions;
      const impPct = b.events ? (100 * b.impressions) / b.events : 0;
      tr.innerHTML =
        `<td>${b.seq}</td><td class="t">${clock(b.t)}</td><td>#${b.gen}</td><td class="num">${fmt(b.events)}</td>` +
        `<td class="mixcell"><span class="mix" title="${b.impressions} impressions, ${conv} conversions"><i class="imp" style="width:${impPct}%"></i><i class="conv" style="width:${100 - impPct}%"></i></span>` +
        `<span class="mix-text">${b.impressions} imp · ${conv} conv</span></td>` +
        `<td class="num">${fmt(b.bytes)}</td><td class="attempts"></td>` +
        `<td><details><summary>JSON</summary></details></td>`;
      const details = tr.querySelector('details');
      details.addEventListener('toggle', () => {
        const next = tr.nextElementSibling;
        if (!details.open) {
          if (next?.classList.contains('json')) next.remove();
          return;
        }
        const le = b.logEvent;
        if (!le) return;
        const shown = { url: le.url, httpVerb: le.httpVerb, headers: le.headers, params: le.params };
        const row = document.createElement('tr');
        row.className = 'json';
        row.innerHTML = '<td colspan="8"><pre></pre></td>';
        row.querySelector('pre').textContent =
          `// LogEvent #${b.seq}: body is ${fmt(b.bytes)} bytes of JSON, sent as is; params is that body parsed\n` +
          JSON.stringify(shown, null, 2);
        tr.after(row);
      });
      body.prepend(tr);
      rows.set(b.seq, { tr, batch: b, key: null });
    }
    renderedSeq = batches[batches.length - 1].seq;
    for (const [seq, row] of rows) {
      if (rows.size <= TABLE_ROWS) break;
      if (row.tr.nextElementSibling?.classList.contains('json')) row.tr.nextElementSibling.remove();
      row.tr.remove();
      row.batch.logEvent = null; // let the LogEvent go
      rows.delete(seq);
    }
  }
  const idle = new Map(); // processor -> nothing in flight (so its batches are settled)
  for (const row of rows.values()) {
    const a = row.batch.attempts;
    const proc = row.batch.proc;
    if (!idle.has(proc)) idle.set(proc, proc.p.stats().inFlight === 0);
    const settled = a.length > 0 && (a[a.length - 1] === 200 || idle.get(proc));
    const key = `${a.join(',')}|${settled}`;
    if (key === row.key) continue;
    row.key = key;
    row.tr.querySelector('.attempts').innerHTML =
      a.map((s) => `<span class="chip ${STATUS_CLASS(s)}">${STATUS_TEXT(s)}</span>`).join('') +
      (settled ? '' : '<span class="chip pending">…</span>');
  }
}

// The timeline: above the axis what the page sent (a segment per batch), below it what
// the collector answered (events per answer kind), in half-second columns, √ scale.
function renderChart() {
  const el = $('#chart');
  const W = el.clientWidth || 800;
  const H = el.clientHeight || 250;
  const m = { l: 44, r: 62, t: 36, b: 22 };
  const now = Date.now();
  const windowMs = Math.min(WINDOW_MAX_MS, Math.max(WINDOW_MIN_MS, now - STARTED + 5000));
  const start = now - windowMs;
  const plotW = W - m.l - m.r;
  const x = (t) => m.l + ((t - start) / windowMs) * plotW;
  const bw = (BUCKET_MS / windowMs) * plotW;
  const windowText = `last ${Math.round(windowMs / 1000)} s, half-second columns`;
  if ($('#chart-window').textContent !== windowText) $('#chart-window').textContent = windowText;
  const mid = m.t + (H - m.t - m.b) / 2;
  const half = (H - m.t - m.b) / 2 - 2;

  while (sentPoints.length && sentPoints[0].t < start - BUCKET_MS) sentPoints.shift();
  while (colPoints.length && colPoints[0].t < start - BUCKET_MS) colPoints.shift();
  while (markers.length && markers[0].t < start) markers.shift();

  const first = Math.floor(start / BUCKET_MS);
  const up = new Map();
  for (const p of sentPoints) {
    const k = Math.floor(p.t / BUCKET_MS);
    if (!up.has(k)) up.set(k, []);
    up.get(k).push(p.events);
  }
  const down = new Map();
  for (const p of colPoints) {
    const k = Math.floor(p.t / BUCKET_MS);
    if (!down.has(k)) down.set(k, { ok: 0, e500: 0, e429: 0, gone: 0, n: 0 });
    const d = down.get(k);
    const cat = p.status === 200 ? 'ok' : p.status === 429 ? 'e429' : p.status === 0 ? 'gone' : 'e500';
    d[cat] += p.events;
    d.n++;
  }
  let max = 10;
  for (const v of up.values()) max = Math.max(max, v.reduce((a, b) => a + b, 0));
  for (const d of down.values()) max = Math.max(max, d.ok + d.e500 + d.e429 + d.gone);
  const NICE = [];
  for (let e = 1; e <= 1e7; e *= 10) NICE.push(e, 2 * e, 5 * e);
  const top = NICE.find((v) => v >= max);
  const s = (v) => Math.sqrt(Math.max(0, v) / top) * half;

  const out = [];
  // grid and y labels (both directions)
  let lastY = Infinity;
  const ticks = [];
  for (const v of [...NICE].reverse()) {
    if (v > top) continue;
    const h = s(v);
    if (lastY - h < 15 || h < 11) continue;
    ticks.push(v);
    lastY = h;
  }
  for (const v of ticks) {
    for (const dir of [-1, 1]) {
      const y = mid + dir * s(v);
      out.push(`<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}"/>`);
      out.push(`<text x="${m.l - 6}" y="${y + 3.5}" text-anchor="end">${fmt(v)}</text>`);
    }
  }
  // x grid: every 5 or 10 s on the clock
  const step = windowMs <= 30_000 ? 5_000 : 10_000;
  for (let t = Math.ceil(start / step) * step; t <= now; t += step) {
    const xx = x(t);
    out.push(`<line class="grid" x1="${xx}" x2="${xx}" y1="${m.t}" y2="${H - m.b}"/>`);
    if (xx < W - m.r - 40) out.push(`<text x="${xx}" y="${H - 6}" text-anchor="middle">${clock(t, false)}</text>`);
  }
  out.push(`<text class="now" x="${W - m.r}" y="${H - 6}" text-anchor="middle">now</text>`);

  // bars
  const barW = Math.max(1, bw - 1.5);
  for (let k = first; k <= Math.floor(now / BUCKET_MS); k++) {
    const x0 = x(k * BUCKET_MS) + 0.75;
    if (x0 + barW < m.l) continue;
    const sent = up.get(k);
    const got = down.get(k);
    if (!sent && !got) continue;
    let cum = 0;
    const sep = sent && sent.length > 1 && half / Math.max(1, sent.length) > 2.5;
    for (const v of sent ?? []) {
      const y1 = mid - s(cum + v);
      const y0 = mid - s(cum);
      out.push(`<rect x="${x0}" y="${y1}" width="${barW}" height="${Math.max(0.5, y0 - y1)}" fill="var(--blue)"${sep ? ' stroke="#fff" stroke-width="0.6"' : ''}/>`);
      cum += v;
    }
    if (got) {
      let c = 0;
      for (const [cat, color] of [['ok', 'var(--green)'], ['e500', 'var(--red)'], ['e429', 'var(--amber)'], ['gone', 'var(--gray)']]) {
        const v = got[cat];
        if (!v) continue;
        const y0 = mid + s(c);
        const y1 = mid + s(c + v);
        out.push(`<rect x="${x0}" y="${y0}" width="${barW}" height="${Math.max(0.5, y1 - y0)}" fill="${color}"/>`);
        c += v;
      }
    }
    const sentEv = (sent ?? []).reduce((a, b) => a + b, 0);
    const tip = [`${clock(k * BUCKET_MS)}`];
    if (sent) tip.push(`sent ${fmt(sent.length)} batch${sent.length > 1 ? 'es' : ''}, ${fmt(sentEv)} events`);
    if (got) {
      const parts = [];
      if (got.ok) parts.push(`${fmt(got.ok)} accepted`);
      if (got.e500) parts.push(`${fmt(got.e500)} refused (5xx)`);
      if (got.e429) parts.push(`${fmt(got.e429)} throttled (429)`);
      if (got.gone) parts.push(`${fmt(got.gone)} timed out`);
      tip.push(`collector: ${parts.join(', ')} in ${fmt(got.n)} answers`);
    }
    out.push(`<rect x="${x0}" y="${m.t}" width="${Math.max(bw, 3)}" height="${H - m.t - m.b}" fill="transparent"><title>${esc(tip.join('\n'))}</title></rect>`);
  }

  // axis and lane labels
  out.push(`<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${mid}" y2="${mid}"/>`);
  out.push(`<text class="lane" x="${W - m.r + 6}" y="${mid - 6}">sent</text>`);
  out.push(`<text class="lane" x="${W - m.r + 6}" y="${mid + 14}">answered</text>`);
  out.push(`<text x="${m.l - 34}" y="${m.t - 10}">events, √ scale</text>`);

  // markers (fault switches, new processors, flushes): a dashed line each, and a label
  // in the first of two rows where it fits (newest first, so the latest is never hidden)
  const groups = []; // markers a few pixels apart share one label
  for (const mk of markers) {
    const xx = x(mk.t);
    if (xx < m.l) continue;
    const g = groups[groups.length - 1];
    if (g && xx - g.x1 < 12) {
      g.label += ` · ${mk.label}`;
      g.x1 = xx;
    } else groups.push({ x: xx, x1: xx, label: mk.label });
  }
  const rowsEnd = [Infinity, Infinity]; // leftmost x taken in each label row
  for (const mk of groups.reverse()) {
    const xx = mk.x;
    if (mk.x1 !== mk.x) out.push(`<line class="marker" x1="${mk.x1}" x2="${mk.x1}" y1="${m.t - 14}" y2="${H - m.b}"/>`);
    const textW = mk.label.length * 6.1 + 8;
    // right of the line if it fits, else left of it; first row first
    let placed = null;
    for (let row = 0; row < 2 && !placed; row++) {
      for (const left of [Math.min(xx, W - 2 - textW), xx - textW]) {
        if (left >= m.l - 30 && left + textW <= rowsEnd[row] - 6) {
          placed = { row, left };
          break;
        }
      }
    }
    out.push(`<line class="marker" x1="${xx}" x2="${xx}" y1="${placed?.row === 1 ? m.t - 26 : m.t - 14}" y2="${H - m.b}"/>`);
    if (!placed) continue;
    rowsEnd[placed.row] = placed.left;
    out.push(`<text class="marker-label" x="${placed.left + 3}" y="${m.t - 18 - placed.row * 13}">${esc(mk.label)}</text>`);
  }
  el.innerHTML = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="batches sent and collector answers over the last minute">${out.join('')}</svg>`;
}

function render() {
  renderCounters();
  renderTable();
  renderChart();
}

// ---------------------------------------------------------------------------------------
// Wiring.
function wire() {
  $('#one-impression').addEventListener('click', () => emit(1, 'impression'));
  $('#one-conversion').addEventListener('click', () => emit(1, 'conversion'));
  $('#burst').addEventListener('click', () => {
    const t0 = performance.now();
    const { accepted, dropped } = emit(1000);
    const ms = performance.now() - t0;
    log(`burst: 1,000 <code>process()</code> calls in ${ms.toFixed(1)} ms: ${fmt(accepted)} accepted` +
      (dropped ? `, <span class="error">${fmt(dropped)} dropped (queue full)</span>` : ''));
  });
  $('#stream').addEventListener('change', (e) => {
    setStream(e.target.checked);
    log(e.target.checked ? `stream on: ${$('#stream-rate').value} events/s` : 'stream off');
  });
  $('#stream-rate').addEventListener('change', () => {
    if (streamTimer) log(`stream rate: ${$('#stream-rate').value} events/s`);
  });

  $('#options').addEventListener('change', () => {
    const o = readOptions();
    if (startProcessor(o)) log('options changed: the previous processor is closing and delivers what it holds');
  });
  $('#options').addEventListener('submit', (e) => e.preventDefault());

  for (const b of document.querySelectorAll('.segmented button')) {
    b.addEventListener('click', () => setFault(b.dataset.mode).catch((e) => log(`<span class="error">fault switch failed: ${esc(e)}</span>`)));
  }

  $('#flush').addEventListener('click', async () => {
    if (!current || current.state !== 'open') return;
    markers.push({ t: Date.now(), label: 'flush()' });
    const before = current.p.stats().queued;
    const t0 = performance.now();
    await current.p.flush();
    log(`flush(): ${fmt(before)} queued events sent, resolved after ${fmt(Math.round(performance.now() - t0))} ms`);
  });
  $('#close').addEventListener('click', async () => {
    if ($('#close').dataset.action === 'new') {
      startProcessor(readOptions());
      return;
    }
    if (!current || current.state !== 'open') return;
    markers.push({ t: Date.now(), label: 'close()' });
    setOpenUi(false);
    $('#close').disabled = true;
    await retire(current, 'close()');
    $('#close').disabled = false;
  });
  $('#reload').addEventListener('click', () => location.reload());

  // The unload flush is the processor's own (`flushOnHide`, on by default: it sends what
  // it holds with navigator.sendBeacon on pagehide / visibilitychange). This listener
  // is registered before any processor exists, so it runs before theirs: it records
  // what is still pending, and the next page shows whether it arrived. It must not call
  // flush() itself: that starts a fetch the processor's beacon then sends again.
  addEventListener('pagehide', () => {
    const t = totals();
    try {
      sessionStorage.setItem(UNLOAD_KEY, JSON.stringify({ session: SESSION, at: Date.now(), dispatched: t.dispatched, pending: t.queued + t.inFlight }));
    } catch {
      // storage may be unavailable
    }
  });
}

async function main() {
  const status = $('#load-status');
  try {
    const t0 = performance.now();
    let ready;
    ({ BatchEventProcessor, ready } = await import('/pkg/browser.js'));
    // Importing never waits for the wasm: the processor below works at once, and the
    // wasm becomes ready in the background.
    const imported = Math.round(performance.now() - t0);
    status.textContent = `package imported in ${imported} ms, loading the wasm…`;
    ready.then(
      () => {
        status.textContent = `wasm ready in ${Math.round(performance.now() - t0)} ms (package imported in ${imported} ms)`;
        status.classList.add('ready');
        log(`wasm ready ${Math.round(performance.now() - t0)} ms after the import started; events processed before were handed to it in order`);
      },
      (e) => {
        status.textContent = 'wasm failed to load';
        status.classList.add('failed');
        log(`<span class="error">${esc(e.message)}</span>`);
      },
    );
  } catch (e) {
    status.textContent = 'package failed to load';
    status.classList.add('failed');
    log(`<span class="error">could not import /pkg/browser.js (${esc(e.message)}). Build the package with <code>make build</code> and reload.</span>`);
    document.body.dataset.state = 'failed';
    return;
  }
  try {
    previousPage = JSON.parse(sessionStorage.getItem(UNLOAD_KEY) ?? 'null');
    sessionStorage.removeItem(UNLOAD_KEY);
  } catch {
    previousPage = null;
  }
  wire();
  // What the collector holds before this page sends anything: a processor re-sends the
  // batches an earlier page left unconfirmed in localStorage to that page's endpoint
  // (its session), and they count here only from now on.
  await pollCollector();
  baseline = structuredClone(collector?.sessions ?? {});
  startProcessor(readOptions());
  if (previousPage) log(`reloaded: the previous page had ${fmt(previousPage.pending)} events queued or in flight at pagehide (see the collector card)`);
  render();
  setInterval(render, 200);
  setInterval(pollCollector, 500);
  document.body.dataset.state = 'ready';
}

main();
