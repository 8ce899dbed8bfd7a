//! The options of `new BatchEventProcessor(options)`: their TypeScript types, their
//! defaults and their validation, in one place.

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

use super::api::show;
use super::error::Error;
use crate::core::{Config, RetryPolicy};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `new BatchEventProcessor(options)`. Every field is optional. */
export interface BatchEventProcessorOptions {
  /** Events per batch before it is sent. Integer >= 1. Default 10. */
  batchSize?: number;
  /** Longest time an event waits in a batch, in ms. > 0. Default 30000. */
  flushInterval?: number;
  /** Events held at once (queued + in flight). Integer >= 1. Default 2000. */
  maxQueueSize?: number;
  /** Largest request body in UTF-8 bytes. Integer from 1 to 3500000. Default 3500000. */
  maxPayloadBytes?: number;
  /** http(s) URL every batch is POSTed to. Default: the Optimizely log-tier endpoint of each event's region. */
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
}

export type DispatchResult = { statusCode?: number; retryAfter?: string | number } | boolean | void;

/** What `onDispatchError` listeners receive when a batch is given up. */
export interface DispatchError {
  /** HTTP status of the last attempt, or null for a network error, timeout or dispatcher error. */
  status: number | null;
  /** Events lost with the batch (counted in `stats().failed`). */
  events: number;
  /** `'rejected'` (a non-retryable status), `'retries-exhausted'` or `'too-large'` (413 for a single event). */
  reason: 'rejected' | 'retries-exhausted' | 'too-large';
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
  /** The Optimizely log-tier v1 EventBatch (parsed from `body` on first access). */
  params: EventBatch;
  /** The exact JSON text that is sent. */
  body: string;
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

/// The largest batch body Optimizely's log tier accepts.
pub const MAX_PAYLOAD_BYTES: usize = 3_500_000;

/// Default of `dispatchTimeout`, in ms (Segment's and PostHog's request timeout).
pub const DISPATCH_TIMEOUT_MS: u32 = 10_000;
/// Default of `closeTimeout`, in ms: long enough for a few retries, well under the
/// 30 s Workers allow for `waitUntil` work.
pub const CLOSE_TIMEOUT_MS: f64 = 15_000.0;

/// Default of `maxStorageBytes`: 1 MB, a fifth of the usual 5 MB origin quota, so the
/// site's own use of localStorage is never crowded out.
pub const MAX_STORAGE_BYTES: f64 = 1_000_000.0;
/// Default of `storageTtl`: 7 days.
pub const STORAGE_TTL_MS: f64 = 604_800_000.0;

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

/// What was given, as error messages show it. Formatting is left to JS: Rust's float
/// formatting alone would add kilobytes to the wasm.
fn got(v: &JsValue) -> String {
    if v.is_function() {
        "a function".into()
    } else if js_sys::Array::is_array(v) {
        "an array".into()
    } else if v.is_object() {
        "an object".into()
    } else {
        show(v)
    }
}

fn invalid(field: &'static str, rule: &'static str, v: &JsValue) -> Error {
    Error::InvalidOption {
        field,
        rule,
        got: got(v),
    }
}

/// Reads `field` (for a nested option such as `retry.maxRetries`, its last part),
/// treating `undefined` and `null` as "use the default".
fn read(options: &JsValue, field: &'static str) -> Result<Option<JsValue>, Error> {
    let key = field.rsplit('.').next().unwrap_or(field);
    let v = Reflect::get(options, &JsValue::from_str(key)).map_err(Error::Js)?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

/// A finite number in `range`, or `None` when the field is absent.
fn number(
    options: &JsValue,
    field: &'static str,
    rule: &'static str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Option<f64>, Error> {
    let Some(v) = read(options, field)? else {
        return Ok(None);
    };
    match v.as_f64() {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(invalid(field, rule, &v)),
    }
}

fn integer(
    options: &JsValue,
    field: &'static str,
    rule: &'static str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Option<usize>, Error> {
    let Some(v) = read(options, field)? else {
        return Ok(None);
    };
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && range.contains(&n) => Ok(Some(n as usize)),
        _ => Err(invalid(field, rule, &v)),
    }
}

/// `true` for an absolute http(s) URL.
fn is_http_url(s: &str) -> bool {
    web_sys::Url::new(s)
        .map(|u| matches!(u.protocol().as_str(), "http:" | "https:") && !u.host().is_empty())
        .unwrap_or(false)
}

impl Options {
    /// Validates the options object given to the constructor.
    pub fn parse(options: &JsValue) -> Result<Options, Error> {
        let mut config = Config::default();
        let empty: JsValue = js_sys::Object::new().into();
        let options = if options.is_undefined() || options.is_null() {
            &empty
        } else {
            options
        };
        if !options.is_object() || options.is_function() || js_sys::Array::is_array(options) {
            return Err(invalid("options", "an object", options));
        }
        const MAX_INT: f64 = 9_007_199_254_740_991.0;
        if let Some(n) = integer(options, "batchSize", "an integer >= 1", 1.0..=MAX_INT)? {
            config.batch_size = n;
        }
        if let Some(n) = integer(options, "maxQueueSize", "an integer >= 1", 1.0..=MAX_INT)? {
            config.max_queue_size = n;
        }
        if let Some(n) = integer(
            options,
            "maxPayloadBytes",
            "an integer from 1 to 3500000",
            1.0..=MAX_PAYLOAD_BYTES as f64,
        )? {
            config.max_payload_bytes = n;
        }
        if let Some(v) = read(options, "flushInterval")? {
            match v.as_f64() {
                Some(ms) if ms.is_finite() && ms > 0.0 => config.flush_interval_ms = ms,
                _ => return Err(invalid("flushInterval", "a finite number > 0 (ms)", &v)),
            }
        }
        config.retry = retry_policy(options)?;
        config.jitter_seed = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        const MS_RULE: &str = "a number of ms from 1 to 2147483647";
        let dispatch_timeout_ms =
            number(options, "dispatchTimeout", MS_RULE, 1.0..=2_147_483_647.0)?
                .map_or(DISPATCH_TIMEOUT_MS, |ms| ms as u32);
        // Backstop for a send whose own timeout could not fire (see the core).
        config.in_flight_limit_ms = Some(f64::from(dispatch_timeout_ms) + 5_000.0);
        let storage = read(options, "storage")?.unwrap_or(JsValue::UNDEFINED);
        let max_storage_bytes = number(
            options,
            "maxStorageBytes",
            "a number of bytes from 0 to 5000000",
            0.0..=5_000_000.0,
        )?
        .unwrap_or(MAX_STORAGE_BYTES);
        let storage_ttl_ms = number(
            options,
            "storageTtl",
            "a number of ms from 0 to 2592000000",
            0.0..=2_592_000_000.0,
        )?
        .unwrap_or(STORAGE_TTL_MS);
        let close_timeout_ms = number(
            options,
            "closeTimeout",
            "a number of ms from 0 to 2147483647",
            0.0..=2_147_483_647.0,
        )?
        .unwrap_or(CLOSE_TIMEOUT_MS);
        if let Some(v) = read(options, "endpoint")? {
            match v.as_string() {
                Some(url) if is_http_url(&url) => config.endpoint = Some(url),
                _ => return Err(invalid("endpoint", "an http:// or https:// URL", &v)),
            }
        }
        let dispatcher = function(options, "dispatcher")?;
        let wait_until = function(options, "waitUntil")?;
        let flush_on_hide = match read(options, "flushOnHide")? {
            None => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| invalid("flushOnHide", "a boolean", &v))?,
        };
        Ok(Options {
            config,
            dispatcher,
            wait_until,
            flush_on_hide,
            storage,
            max_storage_bytes,
            storage_ttl_ms,
            dispatch_timeout_ms,
            close_timeout_ms,
        })
    }
}

/// An optional function.
fn function(options: &JsValue, field: &'static str) -> Result<Option<Function>, Error> {
    match read(options, field)? {
        None => Ok(None),
        Some(v) if v.is_function() => Ok(Some(v.into())),
        Some(v) => Err(invalid(field, "a function", &v)),
    }
}

/// `retry`: `false` disables retrying; `true`, `undefined` or `null` keep the defaults;
/// an object overrides some of them.
fn retry_policy(options: &JsValue) -> Result<RetryPolicy, Error> {
    let mut policy = RetryPolicy::default();
    let Some(retry) = read(options, "retry")? else {
        return Ok(policy);
    };
    match retry.as_bool() {
        Some(false) => return Ok(RetryPolicy::DISABLED),
        Some(true) => return Ok(policy),
        None => {}
    }
    if !retry.is_object() || retry.is_function() || js_sys::Array::is_array(&retry) {
        return Err(invalid("retry", "false or an object", &retry));
    }
    const MS: &str = "a number of ms from 0 to 2147483647";
    let max_retries = "an integer from 0 to 1000";
    if let Some(n) = integer(&retry, "retry.maxRetries", max_retries, 0.0..=1000.0)? {
        policy.max_retries = n as u32;
    }
    if let Some(ms) = number(&retry, "retry.initialBackoff", MS, 0.0..=2_147_483_647.0)? {
        policy.initial_backoff_ms = ms;
    }
    if let Some(ms) = number(&retry, "retry.maxBackoff", MS, 0.0..=2_147_483_647.0)? {
        policy.max_backoff_ms = ms;
    }
    Ok(policy)
}
