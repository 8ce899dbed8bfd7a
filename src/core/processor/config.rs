//! The processor's settings.
//!
//! Owns [`Config`] and its defaults. Must not hold state or validate user input (the
//! wasm layer turns JS options into a `Config`).

use crate::core::retry::RetryPolicy;

/// Default [`Config::max_queue_bytes`]: 8 MiB.
///
/// Wasm memory never shrinks, so the most the queue ever holds is memory the isolate or
/// tab keeps for good. What is held costs about twice the budget at its peak: the
/// events themselves (kept packed, a little smaller than their JSON) plus the body of
/// each batch rendered while it is sent (copied once more into JS). A Cloudflare Worker
/// has 128 MB per isolate for the application and every library in it: 8 MiB keeps the
/// processor's share near 16-24 MB even with the collector down; a phone's tab is
/// often killed above a few hundred MB, where 16-24 MB of analytics goes unnoticed.
/// With ordinary events (~0.7-2 KB) the 2000-event `max_queue_size` binds first
/// (1.4-4 MB); the budget binds for large events (a handful of 1 MB events), which
/// without it could take the whole 4 GiB of wasm32 memory. It also holds two
/// maximal (3.5 MB) batches, so `maxPayloadBytes` stays usable.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// Processor settings. The JS layer validates user options into this.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Events per batch before it is sent (`batchSize`, default 10).
    pub batch_size: usize,
    /// Longest time an event waits in a batch, in ms (`flushInterval`, default 30 000).
    pub flush_interval_ms: f64,
    /// Events held at once: pending plus in flight (`maxQueueSize`, default 2000).
    pub max_queue_size: usize,
    /// Memory budget of what is held, pending plus in flight plus awaiting a retry, in
    /// bytes of event data (each event counted at its size in a batch body, its JSON)
    /// (`maxQueueBytes`, default [`DEFAULT_MAX_QUEUE_BYTES`], 8 MiB). A full budget
    /// drops the new event like a full `max_queue_size`: `process` returns
    /// `Ok(false)` and counts it in `dropped`.
    pub max_queue_bytes: usize,
    /// Largest batch body in UTF-8 bytes (`maxPayloadBytes`, default 3 500 000).
    pub max_payload_bytes: usize,
    /// Where every batch goes; `None` picks the log-tier endpoint of the event's region.
    pub endpoint: Option<String>,
    /// How failed batches are retried.
    pub retry: RetryPolicy,
    /// Seed of the backoff jitter.
    pub jitter_seed: u64,
    /// A send with no outcome after this long counts as a network error (a backstop
    /// for a dispatcher whose own timeout could not fire); `None` waits forever.
    pub in_flight_limit_ms: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_size: 10,
            flush_interval_ms: 30_000.0,
            max_queue_size: 2000,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            max_payload_bytes: 3_500_000,
            endpoint: None,
            retry: RetryPolicy::default(),
            jitter_seed: 0x5EED,
            in_flight_limit_ms: None,
        }
    }
}
