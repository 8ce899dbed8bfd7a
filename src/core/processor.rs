//! The batching state machine: the hub that ties intake, batch lifecycle, lanes,
//! unload draining and stats together.
//!
//! Feed it events with [`Processor::process`], wake it at [`Processor::poll_timeout`]
//! with [`Processor::handle_timeout`], take the batches to send from
//! [`Processor::poll_dispatch`], write each one's body with [`Processor::body`] when
//! it is sent and report each send with
//! [`Processor::on_dispatch_result`]. It never reads a clock: every call that depends
//! on time takes `now_ms`, a monotonic clock in ms (the wasm layer passes
//! `performance.now()`), and every deadline (flush interval, backoff, `Retry-After`
//! waits, sends that never got an answer) is on that clock. Nothing wall-clock enters
//! it: event timestamps come filled in with the events (the glue uses `Date.now()`),
//! and a `Retry-After` date arrives as a wait in ms.
//!
//! This file owns the [`Processor`] struct, its construction and the calls that span
//! the concerns (`flush`, `close`, `is_idle`). Each concern lives in its own module:
//!
//! - `intake`: validation, the context table, the queue limits, queuing.
//! - `lifecycle`: sealed batches, timeouts, retries, splits, settling, bodies.
//! - `lanes`: the order batches go out in (per-visitor order, paused endpoints).
//! - `unload`: draining everything for a beacon when the page goes away.
//! - `stats`: the counters.
//! - `config` and `outcome`: the public settings and the types exchanged with the
//!   dispatcher.
//!
//! Must not read a clock, perform I/O or touch JS types.

mod config;
mod intake;
mod lanes;
mod lifecycle;
mod outcome;
mod stats;
mod unload;

use std::collections::VecDeque;
use std::rc::Rc;

use super::queue::Queue;
use super::retry::Jitter;
use super::wire::BatchContext;
use lifecycle::Batch;

pub use config::{Config, DEFAULT_MAX_QUEUE_BYTES};
pub use outcome::{Dispatch, FailReason, Failure, Outcome};
pub use stats::Stats;

/// An entry of the context table.
#[derive(Debug, Clone)]
struct Context {
    /// [`wire::fnv1a`](super::wire::fnv1a) of `key`.
    hash: u64,
    /// [`wire::context_key`](super::wire::context_key) of the context.
    key: Box<str>,
    context: Rc<BatchContext>,
}

/// The batch event processor, without I/O.
#[derive(Debug)]
pub struct Processor {
    config: Config,
    url: Option<Rc<str>>,
    /// The context table: a context's id is its index. Looked up by a linear scan of
    /// the FNV-1a hashes of the keys (see `intake`), not a `HashMap`: the table is
    /// small (bounded by the sweep) and hashbrown costs kilobytes of wasm (issue 16).
    contexts: Vec<Context>,
    /// The raw context of the last event, its id and its context.
    last_context: Option<(Box<str>, usize, Rc<BatchContext>)>,
    queue: Queue,
    batches: VecDeque<Batch>,
    /// Events in sealed batches not yet settled.
    held_events: usize,
    /// Rendered size of those events (see [`Config::max_queue_bytes`]).
    held_bytes: usize,
    /// The context table is swept when it reaches this size.
    context_sweep_at: usize,
    paused: Vec<(Rc<str>, f64)>,
    failures: VecDeque<Failure>,
    jitter: Jitter,
    next_id: u64,
    stats: Stats,
    closed: bool,
    /// How many batches wait for a retry.
    waiting: usize,
    /// When stale sends were last looked for.
    last_stale_check: f64,
    /// `false` once `poll_dispatch` found nothing to send and nothing changed since:
    /// keeps every `process()` call cheap while batches stall (e.g. an outage).
    dirty: bool,
    /// Bumped whenever a batch is added or removed (see [`Processor::batches_version`]).
    version: u64,
}

impl Processor {
    /// A new processor. A `batch_size` or `max_queue_size` of 0 is treated as 1.
    pub fn new(mut config: Config) -> Processor {
        config.batch_size = config.batch_size.max(1);
        config.max_queue_size = config.max_queue_size.max(1);
        Processor {
            url: config.endpoint.as_deref().map(Rc::from),
            jitter: Jitter::new(config.jitter_seed),
            config,
            contexts: Vec::new(),
            last_context: None,
            queue: Queue::default(),
            batches: VecDeque::new(),
            held_events: 0,
            held_bytes: 0,
            context_sweep_at: 0,
            paused: Vec::new(),
            failures: VecDeque::new(),
            next_id: 1,
            stats: Stats::default(),
            closed: false,
            dirty: true,
            version: 0,
            waiting: 0,
            last_stale_check: f64::NEG_INFINITY,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Seals everything pending into batches, now. Batches waiting for a retry keep
    /// waiting (calling `flush` often must not defeat the backoff).
    pub fn flush(&mut self) {
        for group in self.queue.take_older_than(f64::INFINITY) {
            self.seal(group);
        }
    }

    /// Refuses further events and seals everything pending.
    pub fn close(&mut self) {
        self.closed = true;
        self.flush();
    }

    /// `true` once [`Processor::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// `true` when nothing is pending, waiting to be sent or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.batches.is_empty()
    }
}
