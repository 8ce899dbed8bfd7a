//! The processor's settings.
//!
//! Owns [`Config`] and its defaults. Must not hold state or validate user input (the
//! wasm layer turns JS options into a `Config`).

use crate::core::retry::RetryPolicy;

/// Processor settings. The JS layer validates user options into this.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Events per batch before it is sent (`batchSize`, default 10).
    pub batch_size: usize,
    /// Longest time an event waits in a batch, in ms (`flushInterval`, default 30 000).
    pub flush_interval_ms: f64,
    /// Events held at once: pending plus in flight (`maxQueueSize`, default 2000).
    pub max_queue_size: usize,
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
            max_payload_bytes: 3_500_000,
            endpoint: None,
            retry: RetryPolicy::default(),
            jitter_seed: 0x5EED,
            in_flight_limit_ms: None,
        }
    }
}
