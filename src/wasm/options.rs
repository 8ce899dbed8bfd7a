//! The options of `new BatchEventProcessor(options)`: their TypeScript types, their
//! defaults and their validation, in one place.

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

use super::error::Error;
use crate::core::Config;

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
  dispatcher?: (logEvent: LogEvent) => DispatchResult | Promise<DispatchResult>;
}

/** What a custom dispatcher may return (or resolve with). */
export type DispatchResult = { statusCode?: number } | boolean | void;

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

/// Validated options.
pub struct Options {
    /// The core's settings.
    pub config: Config,
    /// A custom dispatcher, if given.
    pub dispatcher: Option<Function>,
}

fn got(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        format!("{s:?}")
    } else if let Some(n) = v.as_f64() {
        if n.is_infinite() {
            (if n > 0.0 { "Infinity" } else { "-Infinity" }).to_string()
        } else if n.fract() == 0.0 && n.abs() < 1e15 {
            format!("{}", n as i64)
        } else {
            format!("{n}")
        }
    } else if let Some(b) = v.as_bool() {
        b.to_string()
    } else if v.is_function() {
        "a function".to_string()
    } else if js_sys::Array::is_array(v) {
        "an array".to_string()
    } else if v.is_object() {
        "an object".to_string()
    } else {
        v.js_typeof().as_string().unwrap_or_default()
    }
}

fn invalid(field: &'static str, rule: &'static str, v: &JsValue) -> Error {
    Error::InvalidOption {
        field,
        rule,
        got: got(v),
    }
}

/// Reads `field`, treating `undefined` and `null` as "use the default".
fn read(options: &JsValue, field: &'static str) -> Result<Option<JsValue>, Error> {
    let v = Reflect::get(options, &JsValue::from_str(field)).map_err(Error::Js)?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
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
        if options.is_undefined() || options.is_null() {
            return Ok(Options {
                config,
                dispatcher: None,
            });
        }
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
        if let Some(v) = read(options, "endpoint")? {
            match v.as_string() {
                Some(url) if is_http_url(&url) => config.endpoint = Some(url),
                _ => return Err(invalid("endpoint", "an http:// or https:// URL", &v)),
            }
        }
        let dispatcher = match read(options, "dispatcher")? {
            None => None,
            Some(v) if v.is_function() => Some(v.into()),
            Some(v) => return Err(invalid("dispatcher", "a function", &v)),
        };
        Ok(Options { config, dispatcher })
    }
}
