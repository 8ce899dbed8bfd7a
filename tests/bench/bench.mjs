// Benchmark against the Optimizely JS SDK (`npm run bench`, i.e.
// `node --expose-gc tests/bench/bench.mjs`). Node 20. Takes about a minute.
//
// The same process, the same generated events (Optimizely UserEvents from
// tests/support/events.mjs, one context, a new visitor for nearly every event, 3-5
// attributes each, tags with revenue on every conversion), for batch sizes 10 and 100:
//
//   ours   the built package (pkg/node.js): dispatcher `(logEvent) => ({ statusCode: 200 })`
//          that reads only `logEvent.bytes` (never the lazy `body` or `params`).
//   sdk6   SDK 6's BatchEventProcessor (`createBatchEventProcessor` from
//          @optimizely/optimizely-sdk), taken out of its opaque wrapper and driven
//          standalone as in tests/node/golden.test.mjs (sdkProcessor).
//   0.10   @optimizely/js-sdk-event-processor 0.10 `LogTierV1EventProcessor`.
//   limit  `JSON.stringify` of the same UserEvents, cut into batches of the batch size,
//          NOT mapped to the wire shape (no processor, no queue): the cost of turning
//          the objects into bytes at all. 0.10 is in effect the mapped variant:
//          formatEvents + JSON.stringify per batch behind a plain array queue.
//
// The peers' dispatchers are the equivalent of ours: they produce the bytes to send
// (`JSON.stringify(logEvent.params)`, as both SDKs' default dispatchers do) and answer
// 200 at once (SDK 6: a resolved promise; 0.10: the callback, synchronously). Our
// body is built in Rust, so reading `body` is our equivalent.
//
// Throughput, in events/s, until the last batch has reached the dispatcher; the event
// count is a multiple of 100 so every batch fills and no flush() is needed. Two ways to
// feed the events:
//   burst  one synchronous loop over all events, as a hot loop or a backlog would.
//          Every batch is sealed before any dispatch settles (settling needs the event
//          loop), so a processor that does work per batch held pays for it here.
//   paced  100 events per macrotask (`setImmediate` in between), as a server handling
//          requests would: dispatches settle between chunks.
// "settled" also counts the work after the last dispatcher call until the microtask
// queue is empty (for ours: on_dispatch_result and its bookkeeping).
//
// Memory: retained bytes per queued event, each processor in a fresh child process
// (wasm memory never shrinks, so it must be a fresh module): batch size and flush
// interval too large to send anything, 20 000 events queued (each a structuredClone, so
// the JS peers own what they queue, as with events the SDK builds), JS heap from
// `process.memoryUsage().heapUsed` after gc, plus for ours the growth of
// `wasmMemory().buffer.byteLength`. Ours cannot hold 20 000 events (~15 MB of body)
// in one open batch: a batch is sealed at maxPayloadBytes (3.5 MB at most), so ours
// queues them in 5 processors of 4 000 in the same module. "limit" here is an array
// holding the 20 000 events as JSON strings. The inputs are deep copies with flat
// strings (see benchEvents).
//
// BENCH_PKG=path/to/node.js benchmarks another build of ours (e.g. one with a name
// section, for `node --cpu-prof`).
//
// Options: --runs N (5), --events N (10000), --mem-runs N (3), --no-mem, --no-size,
//          --only ours|sdk6|legacy|limit (repeatable), --json (raw results at the end).
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setImmediate as immediate } from 'node:timers/promises';
import os from 'node:os';
import path from 'node:path';
import { makeEvents } from '../support/events.mjs';
import { measureSizes, formatSizes } from './size.mjs';

const require = createRequire(import.meta.url);
const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), '../..');
const HOUR = 3_600_000;
const SEED = 20240611;
const CHUNK = 100;

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc (npm run bench does)');
  process.exit(2);
}

// ------------------------------------------------------------------ arguments

function parseArgs(argv) {
  const o = { runs: 5, events: 10_000, memRuns: 3, mem: true, size: true, only: [], json: false, child: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--runs') o.runs = Number(next());
    else if (a === '--events') o.events = Number(next());
    else if (a === '--mem-runs') o.memRuns = Number(next());
    else if (a === '--no-mem') o.mem = false;
    else if (a === '--no-size') o.size = false;
    else if (a === '--only') o.only.push(next());
    else if (a === '--json') o.json = true;
    else if (a === '--child-mem') o.child = next();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!(o.events > 0 && o.events % CHUNK === 0)) throw new Error(`--events must be a positive multiple of ${CHUNK}`);
  return o;
}

// ------------------------------------------------------------------ events

const EXTRA_ATTRIBUTES = [
  { entityId: '10401066124', key: 'plan_tier', value: 'gold' },
  { entityId: '10401066125', key: 'visits', value: 12 },
  { entityId: '10401066126', key: 'logged_in', value: true },
];

/**
 * makeEvents(n, { contexts: 1 }) adjusted to the benchmark's shape: 3-5 attributes on
 * every event and tags with revenue on every conversion (the SDK keeps `revenue`
 * both in tags and beside them).
 */
function benchEvents(n, seed = SEED) {
  return makeEvents(n, { seed, contexts: 1 }).map((e, i) => {
    const attributes = e.user.attributes.slice(0, 5);
    for (let j = 0; attributes.length < 3; j++) attributes.push(EXTRA_ATTRIBUTES[j]);
    const out = { ...e, user: { ...e.user, attributes } };
    if (e.type === 'conversion') {
      const tags = e.tags && typeof e.tags === 'object' ? { ...e.tags } : {};
      if (typeof tags.revenue !== 'number') tags.revenue = 1000 + ((i * 7919) % 99000);
      out.tags = tags;
      out.revenue = tags.revenue;
      out.value = typeof tags.value === 'number' ? tags.value : null;
    }
    // A deep copy with flat strings: the generator builds strings by concatenation
    // (V8 cons strings), which the first reader flattens, freeing memory in the middle
    // of a measurement.
    return structuredClone(out);
  });
}

// ------------------------------------------------------------------ implementations

let oursModule;
async function ours() {
  if (oursModule) return oursModule;
  const entry = path.resolve(root, process.env.BENCH_PKG || 'pkg/node.js');
  // `make build` swaps pkg/dist in place: wait (up to 10 s) until it is there, as a
  // failed import would stay cached as failed.
  const dist = path.join(path.dirname(entry), 'dist');
  for (let i = 0; i < 20 && !['bep.js', 'bep_bg.wasm'].every((f) => existsSync(path.join(dist, f))); i++) {
    await new Promise((r) => setTimeout(r, 500));
  }
  oursModule = await import(pathToFileURL(entry).href);
  return oursModule;
}
const sdk = require('@optimizely/optimizely-sdk');
const legacy = require('@optimizely/js-sdk-event-processor');

/**
 * Each implementation: `create(batchSize, onBatch)` returns
 * `{ process(event), stop(): Promise, check(): string|undefined }`; `onBatch(bytes)` is
 * called once per batch by its dispatcher.
 */
const IMPLS = {
  ours: {
    label: 'ours (wasm)',
    async create(batchSize, onBatch, { maxQueueSize = 1_000_000 } = {}) {
      const { BatchEventProcessor } = await ours();
      const p = new BatchEventProcessor({
        batchSize,
        flushInterval: HOUR,
        maxQueueSize,
        dispatcher: (logEvent) => {
          // The bytes to send, as the default dispatcher sends them (`body` on builds
          // from before the lazy body, for A/B runs with BENCH_PKG).
          onBatch((logEvent.bytes ?? logEvent.body).length);
          return { statusCode: 200 };
        },
      });
      return {
        p,
        process: (e) => p.process(e),
        stop: () => p.close(),
        stats: () => p.stats(),
      };
    },
  },
  sdk6: {
    label: 'SDK 6 BatchEventProcessor',
    async create(batchSize, onBatch) {
      // As tests/node/golden.test.mjs (sdkProcessor): the processor behind the opaque
      // wrapper, started and driven directly.
      const opaque = sdk.createBatchEventProcessor({
        eventDispatcher: {
          dispatchEvent: (logEvent) => {
            onBatch(JSON.stringify(logEvent.params).length);
            return Promise.resolve({ statusCode: 200 });
          },
        },
        batchSize,
        flushInterval: HOUR,
      });
      const [symbol] = Object.getOwnPropertySymbols(opaque);
      const p = opaque[symbol];
      if (typeof p?.process !== 'function') throw new Error('SDK 6 processor could not be taken out of its wrapper');
      p.start();
      return {
        p,
        process: (e) => p.process(e),
        async stop() {
          p.stop();
          await p.onTerminated();
        },
      };
    },
  },
  legacy: {
    label: 'js-sdk-event-processor 0.10',
    async create(batchSize, onBatch) {
      const p = new legacy.LogTierV1EventProcessor({
        dispatcher: {
          dispatchEvent(request, callback) {
            onBatch(JSON.stringify(request.params).length);
            callback({ statusCode: 200 });
          },
        },
        batchSize,
        flushInterval: HOUR,
      });
      await p.start();
      return { p, process: (e) => p.process(e), stop: () => p.stop() };
    },
  },
  limit: {
    label: 'limit: JSON.stringify batches',
    async create(batchSize, onBatch) {
      let batch = [];
      return {
        process(e) {
          batch.push(e);
          if (batch.length === batchSize) {
            onBatch(JSON.stringify(batch).length);
            batch = [];
          }
        },
        async stop() {},
      };
    },
  },
};

// ------------------------------------------------------------------ throughput

/** One timed run: events/s until the last batch reached the dispatcher, and settled. */
async function throughputRun(impl, events, batchSize, mode) {
  const expected = events.length / batchSize;
  let batches = 0;
  let bytes = 0;
  let tDispatched = 0;
  let resolveAll;
  const allDispatched = new Promise((r) => (resolveAll = r));
  const h = await IMPLS[impl].create(batchSize, (n) => {
    bytes += n;
    if (++batches === expected) {
      tDispatched = performance.now();
      resolveAll();
    }
  });
  globalThis.gc();
  await immediate();
  const t0 = performance.now();
  if (mode === 'burst') {
    for (let i = 0; i < events.length; i++) h.process(events[i]);
  } else {
    for (let i = 0; i < events.length; i += CHUNK) {
      for (let j = i; j < i + CHUNK; j++) h.process(events[j]);
      await immediate();
    }
  }
  await allDispatched;
  // Every microtask (settling the immediate dispatches) has run before a macrotask.
  await immediate();
  const tSettled = performance.now();
  let problem;
  if (batches !== expected) problem = `${batches} batches, expected ${expected}`;
  if (h.stats) {
    const s = h.stats();
    if (s.dispatched !== events.length || s.dropped !== 0) problem = `stats after the run: ${JSON.stringify(s)}`;
  }
  await h.stop();
  if (problem) throw new Error(`${impl} batch ${batchSize} ${mode}: ${problem}`);
  return {
    perSec: events.length / ((tDispatched - t0) / 1000),
    settledPerSec: events.length / ((tSettled - t0) / 1000),
    bytesPerEvent: bytes / events.length,
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function throughput(opts, impls) {
  const events = benchEvents(opts.events);
  const results = [];
  for (const mode of ['burst', 'paced']) {
    for (const batchSize of [10, 100]) {
      // Warm-up (JIT, wasm tier-up), untimed; then the runs, implementations interleaved.
      for (const impl of impls) await throughputRun(impl, events.slice(0, Math.min(events.length, 2000)), batchSize, mode);
      const runs = Object.fromEntries(impls.map((i) => [i, []]));
      for (let r = 0; r < opts.runs; r++) {
        for (const impl of impls) runs[impl].push(await throughputRun(impl, events, batchSize, mode));
      }
      for (const impl of impls) {
        const rs = runs[impl];
        // Ours against this one, run by run (the runs are interleaved, so a ratio from
        // the same round shares the machine's load of the moment), then the median.
        const ratios = runs.ours ? rs.map((r, i) => runs.ours[i].perSec / r.perSec) : [];
        results.push({
          paired: runs.ours ? median(ratios) : undefined,
          // The spread of the per-run ratios: how far one run can be trusted here.
          pairedMin: Math.min(...ratios),
          pairedMax: Math.max(...ratios),
          mode,
          batchSize,
          impl,
          perSec: median(rs.map((r) => r.perSec)),
          min: Math.min(...rs.map((r) => r.perSec)),
          max: Math.max(...rs.map((r) => r.perSec)),
          settledPerSec: median(rs.map((r) => r.settledPerSec)),
          bytesPerEvent: median(rs.map((r) => r.bytesPerEvent)),
        });
      }
    }
  }
  return results;
}

// ------------------------------------------------------------------ memory

const MEM_EVENTS = 20_000;
const OURS_SPLIT = 5;

async function settleGc() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await immediate();
  }
}

/** Runs in a fresh child process: retained bytes per queued event for one implementation. */
async function memoryChild(impl) {
  const events = benchEvents(MEM_EVENTS, SEED + 1);
  // The inputs stay alive through both measurements (otherwise the gc after the loop
  // collects them and the difference goes negative).
  globalThis.__inputs = events;
  const big = MEM_EVENTS * 10;
  let sent = 0;
  const onBatch = () => sent++;
  let h;
  let held = null;
  if (impl === 'limit') {
    h = { process: (e) => held.push(JSON.stringify(e)), stop: async () => {} };
  } else if (impl === 'ours') {
    // Ours seals a batch whenever the next event would take its body past
    // maxPayloadBytes (3 500 000, the largest allowed): 20 000 events (~15 MB of
    // bodies) cannot wait in one open batch. So the 20 000 events are queued in
    // OURS_SPLIT processors of 4 000 (~3 MB of body each) that share the module's
    // memory: every event stays queued, nothing is sealed or sent.
    const { BatchEventProcessor } = await ours();
    const ps = Array.from({ length: OURS_SPLIT }, () => new BatchEventProcessor({
      batchSize: big,
      flushInterval: HOUR,
      maxQueueSize: big,
      dispatcher: () => {
        onBatch();
        return { statusCode: 200 };
      },
    }));
    const per = MEM_EVENTS / OURS_SPLIT;
    let n = 0;
    h = {
      process: (e) => ps[Math.floor(n++ / per)].process(e),
      stats: () => {
        const all = ps.map((p) => p.stats());
        return Object.fromEntries(Object.keys(all[0]).map((k) => [k, all.reduce((a, s) => a + s[k], 0)]));
      },
    };
  } else {
    h = await IMPLS[impl].create(big, onBatch);
  }
  const memory = impl === 'ours' ? (await ours()).wasmMemory() : null;
  await settleGc();
  const heap0 = process.memoryUsage().heapUsed;
  const wasm0 = memory ? memory.buffer.byteLength : 0;
  held = [];
  // The processor and what it holds stay alive until after the measurement.
  globalThis.__keep = [h, held];
  // 100 events per macrotask, as in the paced runs (SDK 6 queues each event in a
  // microtask after process()).
  for (let i = 0; i < events.length; i += CHUNK) {
    for (let j = i; j < i + CHUNK; j++) h.process(structuredClone(events[j]));
    await immediate();
  }
  await settleGc();
  const heap1 = process.memoryUsage().heapUsed;
  if (process.env.BENCH_DEBUG) console.error(impl, { heap0, heap1, mem: process.memoryUsage() });
  const wasm1 = memory ? memory.buffer.byteLength : 0;
  if (sent !== 0) throw new Error(`${impl}: a batch was sent during the memory run`);
  let stats;
  if (impl === 'ours') {
    stats = h.stats();
    if (stats.queued !== MEM_EVENTS) {
      throw new Error(`ours does not hold all ${MEM_EVENTS} events: ${JSON.stringify(stats)}`);
    }
  }
  const result = {
    heapPerEvent: (heap1 - heap0) / MEM_EVENTS,
    wasmPerEvent: (wasm1 - wasm0) / MEM_EVENTS,
    wasmStart: wasm0,
    wasmEnd: wasm1,
    held: held.length,
    stats,
  };
  return result;
}

function memory(opts, impls) {
  const results = [];
  for (const impl of impls) {
    const runs = [];
    for (let r = 0; r < opts.memRuns; r++) {
      const out = execFileSync(process.execPath, ['--expose-gc', here, '--child-mem', impl], { encoding: 'utf8', cwd: root });
      runs.push(JSON.parse(out.trim().split('\n').pop()));
    }
    const heap = median(runs.map((r) => r.heapPerEvent));
    const wasm = median(runs.map((r) => r.wasmPerEvent));
    results.push({ impl, heapPerEvent: heap, wasmPerEvent: wasm, totalPerEvent: heap + wasm, wasmStart: runs[0].wasmStart, wasmEnd: runs[0].wasmEnd, stats: runs[0].stats });
  }
  return results;
}

// ------------------------------------------------------------------ report

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
const LABELS = { ours: 'ours (wasm)', sdk6: 'SDK 6', legacy: '0.10 LogTierV1', limit: 'limit (JSON.stringify)' };

function formatThroughput(results) {
  const head = ['mode', 'batch', 'implementation', 'events/s (median)', 'min .. max', 'settled ev/s', 'body B/ev', 'ours/this', 'per run'];
  const rows = [];
  for (const r of results) {
    const o = results.find((x) => x.mode === r.mode && x.batchSize === r.batchSize && x.impl === 'ours');
    rows.push([
      r.mode,
      String(r.batchSize),
      LABELS[r.impl],
      fmt(r.perSec),
      `${fmt(r.min)} .. ${fmt(r.max)}`,
      fmt(r.settledPerSec),
      fmt(r.bytesPerEvent),
      o && r.impl !== 'ours' ? `${r.paired.toFixed(2)}x` : '',
      o && r.impl !== 'ours' ? `${r.pairedMin.toFixed(2)} .. ${r.pairedMax.toFixed(2)}` : '',
    ]);
  }
  return table(head, rows, [false, true, false, true, true, true, true, true, true]);
}

function formatMemory(results) {
  const o = results.find((r) => r.impl === 'ours');
  const head = ['implementation', 'JS heap B/event', 'wasm growth B/event', 'total B/event', 'ours/this'];
  const rows = results.map((r) => [
    LABELS[r.impl],
    fmt(r.heapPerEvent),
    r.impl === 'ours' ? `${fmt(r.wasmPerEvent)} (${(r.wasmStart / 1048576).toFixed(1)} -> ${(r.wasmEnd / 1048576).toFixed(1)} MiB)` : '-',
    fmt(r.totalPerEvent),
    o && r.impl !== 'ours' ? ratio(o.totalPerEvent, r.totalPerEvent) : '',
  ]);
  return table(head, rows, [false, true, true, true, true]);
}

function table(head, rows, right) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (right[i] ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

function summary(results) {
  const lines = [];
  for (const mode of ['burst', 'paced']) {
    for (const bs of [10, 100]) {
      const get = (impl) => results.find((r) => r.mode === mode && r.batchSize === bs && r.impl === impl);
      const o = get('ours');
      if (!o) continue;
      const parts = ['sdk6', 'legacy', 'limit'].filter(get).map((i) => `ours/${i} ${get(i).paired.toFixed(2)}x`);
      lines.push(`${mode} batch ${bs}: ${parts.join(', ')}`);
    }
  }
  return lines.join('\n');
}

// ------------------------------------------------------------------ main

const opts = parseArgs(process.argv.slice(2));
if (opts.child) {
  console.log(JSON.stringify(await memoryChild(opts.child)));
  process.exit(0); // open processors keep their flush timers; the numbers are out
} else {
  const all = ['ours', 'sdk6', 'legacy', 'limit'];
  const impls = opts.only.length ? all.filter((i) => opts.only.includes(i)) : all;
  const started = performance.now();
  console.log(`batch-event-processor benchmark: Node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}`);
  const sample = benchEvents(opts.events);
  const avg = sample.reduce((a, e) => a + JSON.stringify(e).length, 0) / sample.length;
  const convs = sample.filter((e) => e.type === 'conversion').length;
  console.log(
    `${opts.events} events (${sample.length - convs} impressions, ${convs} conversions, one context, ` +
      `${new Set(sample.map((e) => e.user.id)).size} visitors, ${Math.round(avg)} B of JSON each); ` +
      `${opts.runs} runs, medians`,
  );
  const raw = {};
  let phase = performance.now();
  const took = () => {
    const t = ((performance.now() - phase) / 1000).toFixed(1);
    phase = performance.now();
    return `(${t} s)`;
  };
  raw.throughput = await throughput(opts, impls);
  console.log(`\nThroughput ${took()}, until every batch has reached the dispatcher (ours/this: median of the per-run ratios, per run: their range; > 1: ours is faster)\n`);
  console.log(formatThroughput(raw.throughput));
  console.log(`\n${summary(raw.throughput)}`);
  if (opts.mem) {
    raw.memory = memory(opts, impls);
    console.log(`\nRetained memory per queued event ${took()} (${MEM_EVENTS} queued, fresh process each, median of ${opts.memRuns}; ours/this < 1: ours is smaller)\n`);
    console.log(formatMemory(raw.memory));
  }
  if (opts.size) {
    raw.size = await measureSizes();
    console.log(`\nSize ${took()}: what a user ships (ours/peer < 1: ours is smaller)\n`);
    console.log(formatSizes(raw.size));
  }
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (opts.json) console.log(JSON.stringify(raw));
  // Timers of closed processors are cleared; nothing should keep the process alive.
}
