//! The sans-IO batching core: no JS types, no clock, no I/O.
//!
//! - [`packed`]: the packed event format the JS glue produces, and its validation.
//! - [`wire`]: rendering of the Optimizely log-tier v1 `EventBatch` JSON, with exact
//!   byte accounting.
//! - [`queue`]: the pending events, grouped by context.
//! - [`retry`]: backoff, jitter and `Retry-After`.
//! - [`processor`]: the state machine that ties them together.

pub mod error;
pub mod packed;
pub mod processor;
pub mod queue;
pub mod retry;
pub mod wire;

pub use error::Error;
pub use processor::{Config, Dispatch, FailReason, Failure, Outcome, Processor, Stats};
pub use retry::RetryPolicy;
