//! The options of `new BatchEventProcessor(options)` on the Rust side: their
//! TypeScript declarations, and reading the object that `validOptions`
//! (src/wasm/js/options.js) returns into the core's [`Config`] and the wasm layer's
//! settings. Every rule, message and default lives in that JS module, so that a
//! processor made before the wasm is ready throws the same errors, and the wasm carries
//! no rule or format string. Must not: check or default an option here.

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

use crate::core::{Config, RetryPolicy};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `new BatchEventProcessor(options)`. Every field is optional. */
export interface BatchEventProcessorOptions {
  /** Events per batch before it is sent. Integer >= 1. Default 10. */
  batchSize?: number;
  /** Longest time an event waits in a batch, in ms. > 0 and at most 2147483647 (the longest timer delay). Default 30000. */
  flushInterval?: number;
  /** Events held at once (queued + in flight + awaiting retry). Integer >= 1. Default 2000. */
  maxQueueSize?: number;
  /** Memory budget of what is held (queued + in flight + awaiting retry), in bytes of event data; a new event that does not fit is dropped and counted in `stats().dropped`. Integer >= 1. Default 8388608 (8 MiB): fits a Cloudflare Worker (128 MB per isolate) and a phone's tab. */
  maxQueueBytes?: number;
  /** Largest request body in UTF-8 bytes. Integer from 1 to 3500000. Default 3500000. */
  maxPayloadBytes?: number;
  /** http(s) URL every batch is POSTed to, without credentials (`fetch` refuses `user:password@`). Default: the Optimizely log-tier endpoint of each event's region. */
  endpoint?: string;
  /** Sends a batch instead of the default `fetch` POST. See README for how results map to success and failure. */
  dispatcher?: (logEvent: LogEvent, flags: DispatchFlags) => DispatchResult | Promise<DispatchResult>;
  /** Retry policy for failed batches, or `false` to never retry. Default `{ maxRetries: 10, initialBackoff: 500, maxBackoff: 30000 }`. */
  retry?: false | RetryOptions;
  /** Longest time one send may take before it counts as a network error (and is aborted), in ms. Default 10000. */
  dispatchTimeout?: number;
  /** Longest time `close()` keeps retrying before it resolves with what is still pending, in ms. Default 15000. */
  closeTimeout?: number;
  /** Browsers: when the page is hidden or left, send everything queued at once with `navigator.sendBeacon` (or a keepalive fetch) in bodies under 64 KB. Default true. */
  flushOnHide?: boolean;
  /** Browsers: where unconfirmed batches are kept across reloads and crashes. Default `localStorage` (when available); `false` disables; or any object with `getItem`, `setItem`, `removeItem` (and `key`, `length`). */
  storage?: false | Pick<Storage, 'getItem' | 'setItem' | 'removeItem' | 'key' | 'length'>;
  /** Cap of what is persisted, in bytes (UTF-16, as browsers count quota). Default 1000000. */
  maxStorageBytes?: number;
  /** Stored batches older than this are dropped, in ms. Default 604800000 (7 days). */
  storageTtl?: number;
  /** Workers: called with the promise of every send, e.g. `waitUntil` from `cloudflare:workers`, so no send is cut off when the request ends. */
  waitUntil?: (promise: Promise<unknown>) => void;
}

/** Exponential backoff with full jitter: the wait before retry n is uniform in [0, min(maxBackoff, initialBackoff * 2^n)]. */
export interface RetryOptions {
  /** Retries after the first attempt. Integer >= 0. Default 10. */
  maxRetries?: number;
  /** Bound of the first wait, in ms. Default 500. */
  initialBackoff?: number;
  /** Bound of any wait, in ms. Default 30000. */
  maxBackoff?: number;
}

/** What a custom dispatcher may return (or resolve with). `retryAfter` is a Retry-After header value (seconds or an HTTP date), honoured with 429 and 503. */
/** The second argument of a custom dispatcher. */
export interface DispatchFlags {
  /** The page is being hidden or left: use `navigator.sendBeacon` or `fetch(..., { keepalive: true })`, and keep the body under 64 KB. */
  pageHidden: boolean;
  /** Aborted when the send times out (`dispatchTimeout`) or `close()` reaches its deadline: pass it to `fetch`. */
  signal: AbortSignal;
}

export type DispatchResult = { statusCode?: number; retryAfter?: string | number } | boolean | void;

/** What `onDispatchError` listeners receive when a batch is given up. */
export interface DispatchError {
  /** HTTP status of the last attempt, or null for a network error, timeout or dispatcher error. */
  status: number | null;
  /** Events lost with the batch (counted in `stats().failed`). */
  events: number;
  /** `'rejected'` (a non-retryable status), `'retries-exhausted'` or `'too-large'` (413 for a single event); browsers, before the wasm is ready: `'load-failed'` (it cannot load; the events are kept in storage, not lost: `events` counts them) or `'refused'` (events accepted before it was ready that it then refused). */
  reason: 'rejected' | 'retries-exhausted' | 'too-large' | 'load-failed' | 'refused';
  /** A sentence for logs. */
  message: string;
}

/** What `close()` resolves with. */
export interface CloseSummary {
  /** Events delivered over the processor's life. */
  dispatched: number;
  /** Events given up over the processor's life. */
  failed: number;
  /** Events still undelivered when `close()` resolved (its deadline passed). */
  pending: number;
}

/** One batch as handed to dispatchers and `onEventDispatch` listeners. */
export interface LogEvent {
  url: string;
  httpVerb: 'POST';
  headers: { 'Content-Type': 'application/json' };
  /** The Optimizely log-tier v1 EventBatch (parsed from `body` on first access, then cached). */
  params: EventBatch;
  /** The exact JSON text that is sent (decoded from `bytes` on first access, then cached). */
  body: string;
  /**
   * The exact bytes that are sent: the UTF-8 `body` as written in wasm, copied out once.
   * Send these (`fetch(url, { method: 'POST', body: logEvent.bytes })`) to skip building
   * the string. Do not modify them: the default dispatcher sends this very array.
   */
  readonly bytes: Uint8Array;
}

/** The Optimizely log-tier v1 payload. */
export interface EventBatch {
  account_id: string;
  project_id: string;
  revision?: string;
  client_name?: string;
  client_version?: string;
  anonymize_ip?: boolean;
  enrich_decisions: true;
  visitors: Array<{
    visitor_id: string;
    attributes: Array<{ entity_id: string; key: string; type: 'custom'; value: string | number | boolean }>;
    snapshots: Array<{ decisions?: unknown[]; events: unknown[] }>;
  }>;
}

/** The context shared by the events of one batch. */
export interface EventContext {
  accountId: string;
  projectId: string;
  revision?: string;
  clientName?: string;
  clientVersion?: string;
  anonymizeIP?: boolean;
  botFiltering?: boolean;
  /** `'EU'` sends to the EU endpoint; anything else to the US one. */
  region?: string;
}

interface BaseEvent {
  /** Filled with a UUID v4 when omitted. */
  uuid?: string;
  /** ms since epoch; filled with `Date.now()` when omitted. */
  timestamp?: number;
  context: EventContext;
  user: { id: string; attributes?: Array<{ entityId: string; key: string; value: string | number | boolean }> };
}

/** A decision (`campaign_activated`) event, as the Optimizely JS SDK builds it. */
export interface ImpressionEvent extends BaseEvent {
  type: 'impression';
  layer?: { id: string | null } | null;
  experiment?: { id: string | null; key?: string } | null;
  variation?: { id: string | null; key?: string } | null;
  ruleKey?: string;
  flagKey?: string;
  ruleType?: string;
  enabled?: boolean;
  cmabUuid?: string;
}

/** A conversion event, as the Optimizely JS SDK builds it. */
export interface ConversionEvent extends BaseEvent {
  type: 'conversion';
  event: { id: string; key: string };
  revenue?: number | null;
  value?: number | null;
  tags?: Record<string, unknown> | null;
}

/** An Optimizely `UserEvent`. */
export type UserEvent = ImpressionEvent | ConversionEvent;

/** Counters returned by `stats()`. */
export interface Stats {
  /** Events waiting to be batched. */
  queued: number;
  /** Events in batches handed to the dispatcher and not yet settled. */
  inFlight: number;
  /** Events in batches the collector accepted. */
  dispatched: number;
  /** Batches the collector accepted. */
  batches: number;
  /** Batch sends that were retries. */
  retried: number;
  /** Events in batches that could not be delivered. */
  failed: number;
  /** Events refused because the queue was full. */
  dropped: number;
  /** Body bytes of the batches the collector accepted. */
  bytesSent: number;
}
"#;

#[wasm_bindgen(module = "/src/wasm/js/options.js")]
extern "C" {
    /// Validates the constructor's options (throws a `TypeError` naming the field and
    /// the rule); returns every option with its default filled in.
    #[wasm_bindgen(catch, js_name = validOptions)]
    fn valid_options(options: &JsValue) -> Result<JsValue, JsValue>;
    /// The deadline of `close(options)`: `options.timeout` in ms, or `default_ms`;
    /// throws a `TypeError` for an invalid timeout.
    #[wasm_bindgen(catch, js_name = closeTimeout)]
    pub fn close_timeout(options: &JsValue, default_ms: f64) -> Result<f64, JsValue>;
}

/// The longest delay `setTimeout` takes, in ms.
const MAX_TIMER_MS: f64 = 2_147_483_647.0;

/// Validated options.
pub struct Options {
    /// The core's settings.
    pub config: Config,
    /// A custom dispatcher, if given.
    pub dispatcher: Option<Function>,
    /// `waitUntil`, if given.
    pub wait_until: Option<Function>,
    /// `flushOnHide`: send everything when the page is hidden or left (browsers).
    pub flush_on_hide: bool,
    /// `storage`: `undefined` (localStorage in browsers), `false`, or a Storage-like object.
    pub storage: JsValue,
    /// `maxStorageBytes`: cap of what is persisted.
    pub max_storage_bytes: f64,
    /// `storageTtl`: stored batches older than this are dropped, in ms.
    pub storage_ttl_ms: f64,
    /// `dispatchTimeout`, in ms.
    pub dispatch_timeout_ms: u32,
    /// `closeTimeout`, in ms.
    pub close_timeout_ms: f64,
}

/// `valid[key]` (the object comes from `validOptions`: every key is there).
fn get(valid: &JsValue, key: &str) -> JsValue {
    Reflect::get(valid, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A number field of the validated options.
fn number(valid: &JsValue, key: &str) -> f64 {
    get(valid, key).as_f64().unwrap_or(0.0)
}

impl Options {
    /// Validates the options object given to the constructor (in JS) and reads it.
    pub fn parse(options: &JsValue) -> Result<Options, JsValue> {
        let v = valid_options(options)?;
        let dispatch_timeout_ms = number(&v, "dispatchTimeout");
        let config = Config {
            batch_size: number(&v, "batchSize") as usize,
            flush_interval_ms: number(&v, "flushInterval"),
            max_queue_size: number(&v, "maxQueueSize") as usize,
            max_queue_bytes: number(&v, "maxQueueBytes") as usize,
            max_payload_bytes: number(&v, "maxPayloadBytes") as usize,
            endpoint: get(&v, "endpoint").as_string(),
            retry: RetryPolicy {
                max_retries: number(&v, "maxRetries") as u32,
                initial_backoff_ms: number(&v, "initialBackoff"),
                max_backoff_ms: number(&v, "maxBackoff"),
            },
            jitter_seed: (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64,
            // Backstop for a send whose own timeout could not fire (see the core),
            // kept a valid timer delay.
            in_flight_limit_ms: Some((dispatch_timeout_ms + 5_000.0).min(MAX_TIMER_MS)),
        };
        Ok(Options {
            config,
            dispatcher: get(&v, "dispatcher").dyn_into().ok(),
            wait_until: get(&v, "waitUntil").dyn_into().ok(),
            flush_on_hide: get(&v, "flushOnHide").is_truthy(),
            storage: get(&v, "storage"),
            max_storage_bytes: number(&v, "maxStorageBytes"),
            storage_ttl_ms: number(&v, "storageTtl"),
            dispatch_timeout_ms: dispatch_timeout_ms as u32,
            close_timeout_ms: number(&v, "closeTimeout"),
        })
    }
}
