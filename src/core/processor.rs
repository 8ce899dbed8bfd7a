//! The batching state machine.
//!
//! Feed it events with [`Processor::process`], wake it at [`Processor::poll_timeout`]
//! with [`Processor::handle_timeout`], take the batches to send from
//! [`Processor::poll_dispatch`] and report each send with
//! [`Processor::on_dispatch_result`]. It never reads a clock: every call that depends
//! on time takes `now_ms`.

use std::collections::{HashMap, VecDeque};

use super::error::Error;
use super::packed::{self, SEP};
use super::queue::{Group, Queue, Record};
use super::wire::{self, BatchContext, BODY_TAIL};

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_size: 10,
            flush_interval_ms: 30_000.0,
            max_queue_size: 2000,
            max_payload_bytes: 3_500_000,
            endpoint: None,
        }
    }
}

/// A batch to hand to the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// Identifies the batch in [`Processor::on_dispatch_result`].
    pub id: u64,
    /// Endpoint to POST to.
    pub url: String,
    /// The JSON body, exactly as it must be sent.
    pub body: String,
    /// Number of events in the batch.
    pub events: usize,
}

/// How a dispatch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The collector accepted the batch (2xx).
    Delivered,
    /// The batch was not delivered; `status` is the HTTP status when there was one.
    Failed {
        /// HTTP status, or `None` for a network error or a dispatcher that threw.
        status: Option<u16>,
    },
}

/// Counters, as returned by `stats()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events waiting to be batched.
    pub queued: usize,
    /// Events in batches handed to the dispatcher and not yet settled.
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

#[derive(Debug, Clone, Copy)]
struct InFlight {
    events: usize,
    bytes: usize,
}

/// Contexts are forgotten once this many are known and nothing is pending.
const CONTEXT_TABLE_LIMIT: usize = 64;

/// The batch event processor, without I/O.
#[derive(Debug)]
pub struct Processor {
    config: Config,
    contexts: Vec<BatchContext>,
    context_ids: HashMap<String, usize>,
    queue: Queue,
    in_flight: HashMap<u64, InFlight>,
    in_flight_events: usize,
    outbox: VecDeque<Dispatch>,
    next_id: u64,
    stats: Stats,
    closed: bool,
}

impl Processor {
    /// A new processor. A `batch_size` or `max_queue_size` of 0 is treated as 1.
    pub fn new(mut config: Config) -> Processor {
        config.batch_size = config.batch_size.max(1);
        config.max_queue_size = config.max_queue_size.max(1);
        Processor {
            config,
            contexts: Vec::new(),
            context_ids: HashMap::new(),
            queue: Queue::default(),
            in_flight: HashMap::new(),
            in_flight_events: 0,
            outbox: VecDeque::new(),
            next_id: 1,
            stats: Stats::default(),
            closed: false,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Accepts one packed event (see [`packed`]).
    ///
    /// Returns `Ok(true)` when it was queued, `Ok(false)` when the queue was full and
    /// the event was dropped (and counted), and an error for an invalid event, an
    /// event too large for any batch, or a closed processor. A refused event leaves
    /// the processor as it was.
    pub fn process(&mut self, event: &str, now_ms: f64) -> Result<bool, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        let parsed = packed::parse(event)?;
        let fields: Box<str> = if parsed.needs_timestamp {
            fill_timestamp(parsed.data, now_ms).into()
        } else {
            parsed.data.into()
        };
        let context = self.context_id(parsed.context);
        let ctx = &self.contexts[context];
        let bytes = wire::visitor_bytes(ctx, parsed.kind, &fields);
        let single = ctx.single_body_bytes(bytes);
        if single > self.config.max_payload_bytes {
            return Err(Error::EventTooLarge {
                bytes: single,
                max: self.config.max_payload_bytes,
            });
        }
        if self.queue.len() + self.in_flight_events >= self.config.max_queue_size {
            self.stats.dropped += 1;
            return Ok(false);
        }
        let header = ctx.header.len();
        if let Some(group) = self.queue.group(context) {
            if group.body_bytes_with(header, bytes) > self.config.max_payload_bytes {
                self.seal_context(context);
            }
        }
        let record = Record {
            kind: parsed.kind,
            bytes,
            fields,
        };
        if self.queue.push(context, record, now_ms) >= self.config.batch_size {
            self.seal_context(context);
        }
        Ok(true)
    }

    /// When the processor next needs [`Processor::handle_timeout`], in `now_ms` time.
    pub fn poll_timeout(&self) -> Option<f64> {
        self.queue
            .oldest()
            .map(|t| t + self.config.flush_interval_ms)
    }

    /// Seals every batch whose flush interval has passed.
    pub fn handle_timeout(&mut self, now_ms: f64) {
        let due = self
            .queue
            .take_older_than(now_ms - self.config.flush_interval_ms);
        for group in due {
            self.seal(group);
        }
    }

    /// Seals everything pending into batches, now.
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

    /// The next batch to send.
    pub fn poll_dispatch(&mut self) -> Option<Dispatch> {
        self.outbox.pop_front()
    }

    /// Records how the send of batch `id` ended. Returns `false` for an unknown id
    /// (already settled), which is ignored.
    pub fn on_dispatch_result(&mut self, id: u64, outcome: Outcome) -> bool {
        let Some(batch) = self.in_flight.remove(&id) else {
            return false;
        };
        self.in_flight_events -= batch.events;
        match outcome {
            Outcome::Delivered => {
                self.stats.dispatched += batch.events as u64;
                self.stats.batches += 1;
                self.stats.bytes_sent += batch.bytes as u64;
            }
            Outcome::Failed { .. } => self.stats.failed += batch.events as u64,
        }
        true
    }

    /// `true` when nothing is pending, waiting to be sent or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// Ids of the batches handed out and not yet settled.
    pub fn in_flight_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.in_flight.keys().copied()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            queued: self.queue.len(),
            in_flight: self.in_flight_events,
            ..self.stats
        }
    }

    fn context_id(&mut self, raw: &str) -> usize {
        let key = wire::context_key(raw);
        if let Some(&id) = self.context_ids.get(&key) {
            return id;
        }
        if self.contexts.len() >= CONTEXT_TABLE_LIMIT && self.queue.is_empty() {
            self.contexts.clear();
            self.context_ids.clear();
        }
        let id = self.contexts.len();
        self.contexts.push(BatchContext::new(raw));
        self.context_ids.insert(key, id);
        id
    }

    fn seal_context(&mut self, context: usize) {
        if let Some(group) = self.queue.take(context) {
            self.seal(group);
        }
    }

    fn seal(&mut self, group: Group) {
        let ctx = &self.contexts[group.context];
        let bytes = group.body_bytes(ctx.header.len());
        let mut body = String::with_capacity(bytes);
        body.push_str(&ctx.header);
        for (i, r) in group.records.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            wire::write_visitor(&mut body, ctx, r.kind, &r.fields);
        }
        body.push_str(BODY_TAIL);
        debug_assert_eq!(body.len(), bytes, "byte accounting drifted");
        let url = match &self.config.endpoint {
            Some(url) => url.clone(),
            None => ctx.endpoint().to_string(),
        };
        let id = self.next_id;
        self.next_id += 1;
        let events = group.records.len();
        self.in_flight.insert(
            id,
            InFlight {
                events,
                bytes: body.len(),
            },
        );
        self.in_flight_events += events;
        self.outbox.push_back(Dispatch {
            id,
            url,
            body,
            events,
        });
    }
}

/// Puts `now_ms` (as an integer, like `Date.now()`) into an empty timestamp field.
fn fill_timestamp(data: &str, now_ms: f64) -> String {
    let (uuid, rest) = data.split_once(SEP).unwrap_or((data, ""));
    let rest = rest.strip_prefix(SEP).unwrap_or(rest);
    format!("{uuid}{SEP}{}{SEP}{rest}", now_ms.max(0.0).floor() as u64)
}
