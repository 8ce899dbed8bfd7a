//! The counters `stats()` returns.
//!
//! Owns [`Stats`] and how the live counts (queued, in flight) are read. Must not change
//! any state: counters are bumped where the events they count happen.

use super::Processor;

/// Counters, as returned by `stats()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events waiting to be batched.
    pub queued: usize,
    /// Events in sealed batches not yet settled: being sent or waiting for a retry.
    pub in_flight: usize,
    /// Events in batches the collector accepted.
    pub dispatched: u64,
    /// Batches the collector accepted.
    pub batches: u64,
    /// Batch sends that were retries.
    pub retried: u64,
    /// Events in batches that could not be delivered.
    pub failed: u64,
    /// Events refused because the queue was full.
    pub dropped: u64,
    /// Body bytes of the batches the collector accepted.
    pub bytes_sent: u64,
}

impl Processor {
    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            queued: self.queue.len(),
            in_flight: self.held_events,
            ..self.stats
        }
    }

    /// Bytes of event data held (pending, in flight and awaiting a retry), as counted
    /// against [`Config::max_queue_bytes`](super::Config::max_queue_bytes).
    pub fn held_bytes(&self) -> usize {
        self.queue.bytes() + self.held_bytes
    }
}
