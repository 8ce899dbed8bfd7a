//! The sans-IO batching core: no JS types, no clock, no I/O.
//!
//! - [`packed`]: the packed event format the JS glue produces, and its validation.
//! - [`wire`]: rendering of the Optimizely log-tier v1 `EventBatch` JSON, with exact
//!   byte accounting.
//! - [`queue`]: the pending events, grouped by context.
//! - [`retry`]: backoff, jitter and `Retry-After`.
//! - [`processor`]: the state machine that ties them together, one module per concern:
//!   intake (validation, contexts, queue limits), batch lifecycle (sealing, timeouts,
//!   retries, splits, settling), lanes (the order batches go out in), unload draining
//!   and stats.
//! - [`error`]: the one error type of the core.
//! - [`set`]: a small set of `u64` ids and hashes (no hashbrown, no sort in the wasm).
//!
//! Must not read a clock, perform I/O or touch JS types: time comes in as `now_ms`.

pub mod error;
pub mod packed;
pub mod processor;
pub mod queue;
pub mod retry;
pub mod set;
pub mod wire;

pub use error::Error;
pub use processor::{
    Config, Dispatch, FailReason, Failure, Outcome, Processor, Stats, DEFAULT_MAX_QUEUE_BYTES,
};
pub use retry::RetryPolicy;
