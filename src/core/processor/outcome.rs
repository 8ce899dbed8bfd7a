//! What crosses between the processor and whoever sends its batches.
//!
//! Owns the types handed out and reported back: [`Dispatch`], [`Outcome`],
//! [`Failure`] and [`FailReason`]. Must not hold state or decide what is retried
//! (that is [`crate::core::retry`]).

/// A batch to hand to the dispatcher. Its body is written by [`Processor::body`](super::Processor::body) when
/// it is sent, not when it is handed out: a burst of batches handed out at once does
/// not hold all their bodies at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// Identifies the batch in [`Processor::body`](super::Processor::body) and [`Processor::on_dispatch_result`](super::Processor::on_dispatch_result).
    pub id: u64,
    /// Endpoint to POST to.
    pub url: String,
    /// Number of events in the batch.
    pub events: usize,
    /// `true` the first time these events are sent; `false` for retries and for the
    /// halves of a batch split after a 413 (listeners hear of each event once).
    pub first_attempt: bool,
}

/// How a dispatch ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The collector accepted the batch (2xx).
    Delivered,
    /// The batch was not delivered; `status` is the HTTP status when there was one.
    Failed {
        /// HTTP status, or `None` for a network error, a timeout or a dispatcher that
        /// threw or returned `false`.
        status: Option<u16>,
        /// The wait a `Retry-After` header asked for, in ms from now (the caller turns
        /// an HTTP date into a wait: the core reads no clock); honoured on 429 and 503
        /// only, capped at 300 s, never shorter than the backoff, and it uses a retry.
        retry_after_ms: Option<f64>,
    },
}

impl Outcome {
    /// The outcome of an HTTP answer with this status and no `Retry-After`.
    pub fn status(status: u16) -> Outcome {
        if (200..300).contains(&status) {
            Outcome::Delivered
        } else {
            Outcome::Failed {
                status: Some(status),
                retry_after_ms: None,
            }
        }
    }

    /// A failure without a status (network error, timeout, dispatcher error).
    pub const NETWORK_ERROR: Outcome = Outcome::Failed {
        status: None,
        retry_after_ms: None,
    };
}

/// Why a batch was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The collector answered with a status that is not retried (4xx but 408/413/429).
    Rejected,
    /// Every retry failed.
    RetriesExhausted,
    /// A single event was still too large for the collector (413).
    TooLarge,
}

/// A batch the processor gave up on, for `onDispatchError` listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The batch.
    pub id: u64,
    /// HTTP status of the last attempt, if there was one.
    pub status: Option<u16>,
    /// Events lost with it (counted in [`Stats::failed`](super::Stats::failed)).
    pub events: usize,
    /// Why it was given up.
    pub reason: FailReason,
}
