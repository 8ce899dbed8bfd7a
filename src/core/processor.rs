//! The batching state machine.
//!
//! Feed it events with [`Processor::process`], wake it at [`Processor::poll_timeout`]
//! with [`Processor::handle_timeout`], take the batches to send from
//! [`Processor::poll_dispatch`], write each one's body with [`Processor::body`] when
//! it is sent and report each send with
//! [`Processor::on_dispatch_result`]. It never reads a clock: every call that depends
//! on time takes `now_ms`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::rc::Rc;

use super::error::Error;
use super::packed::{self, data, Fields, SEP};
use super::queue::{Group, Queue, Record};
use super::retry::{self, Jitter, RetryPolicy, Verdict};
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

/// A batch to hand to the dispatcher. Its body is written by [`Processor::body`] when
/// it is sent, not when it is handed out: a burst of batches handed out at once does
/// not hold all their bodies at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// Identifies the batch in [`Processor::body`] and [`Processor::on_dispatch_result`].
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
        /// The wait a `Retry-After` header asked for, in ms (see
        /// [`retry::parse_retry_after`]); honoured on 429 and 503 only.
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
    /// Events lost with it (counted in [`Stats::failed`]).
    pub events: usize,
    /// Why it was given up.
    pub reason: FailReason,
}

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

/// Where a sealed batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Waiting for its turn to be handed out.
    Ready,
    /// Handed to the dispatcher at this time; its outcome is awaited.
    InFlight(f64),
    /// Failed; ready again at this time.
    Waiting(f64),
}

/// Visitor ids are kept as 64-bit hashes already: sets of them need no rehashing.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of visitor hashes.
type VisitorSet = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// What a sealed batch may do now.
///
/// Batches go out in the order they were sealed, several at once. A batch that shares
/// a visitor with an earlier batch waiting for a retry (or behind a `Retry-After`
/// pause) is *stalled* behind it until that one is delivered or given up, so retries
/// never reorder a visitor's events; batches of other visitors keep flowing, so a
/// retrying batch never holds them up. Batches in flight at the same time do not wait
/// for each other (that would serialize every visitor's traffic, and in Workers tie
/// one request's sends to another request's I/O).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Being sent.
    InFlight,
    /// May be handed out now.
    Sendable,
    /// Waits for a retry, a `Retry-After` pause, or a batch that does.
    Stalled,
}

/// A sealed batch: kept in packed form until it is delivered or given up, so that it
/// can be sent again, or split after a 413.
#[derive(Debug)]
struct Batch {
    id: u64,
    context: Rc<BatchContext>,
    url: Rc<str>,
    records: Vec<Record>,
    /// Hashes of the visitor ids in the batch, sorted: a batch is not handed out while an
    /// earlier unsettled batch shares a visitor, so each visitor's events keep their order.
    visitors: Vec<u64>,
    /// Retries used (a `Retry-After` wait uses none).
    retries: u32,
    /// `false` until first handed out.
    sent_before: bool,
    /// `true` once an attempt failed (or the batch is half of a split one).
    failed_before: bool,
    state: State,
}

impl Batch {
    fn events(&self) -> usize {
        self.records.len()
    }
}

/// How often sends that never got an answer are looked for, in ms.
const STALE_CHECK_EVERY_MS: f64 = 1000.0;

/// Contexts are forgotten once this many are known and nothing is pending.
const CONTEXT_TABLE_LIMIT: usize = 64;

/// The batch event processor, without I/O.
#[derive(Debug)]
pub struct Processor {
    config: Config,
    url: Option<Rc<str>>,
    contexts: Vec<Rc<BatchContext>>,
    context_ids: HashMap<String, usize>,
    /// The raw context of the last event and its id.
    last_context: Option<(Box<str>, usize)>,
    queue: Queue,
    batches: VecDeque<Batch>,
    held_events: usize,
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
            context_ids: HashMap::new(),
            last_context: None,
            queue: Queue::default(),
            batches: VecDeque::new(),
            held_events: 0,
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
        self.forget_contexts_if_idle();
        let (context, record) = self.prepare(event, now_ms)?;
        if !self.has_room(1) {
            self.stats.dropped += 1;
            return Ok(false);
        }
        self.enqueue(context, record, now_ms);
        Ok(true)
    }

    /// Accepts several packed events all together or not at all: every event is
    /// validated first (the error names the event's index), then, if the queue has
    /// room for all of them, they are queued in order and `Ok(true)` is returned;
    /// otherwise none is and they are all counted as dropped (`Ok(false)`).
    pub fn process_all(&mut self, events: &[String], now_ms: f64) -> Result<bool, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.forget_contexts_if_idle();
        let prepared = events
            .iter()
            .enumerate()
            .map(|(i, event)| self.prepare(event, now_ms).map_err(|e| e.in_event(i)))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.has_room(prepared.len()) {
            self.stats.dropped += prepared.len() as u64;
            return Ok(false);
        }
        for (context, record) in prepared {
            self.enqueue(context, record, now_ms);
        }
        Ok(true)
    }

    /// Validates one packed event and turns it into a record of its context, without
    /// queuing it.
    fn prepare(&mut self, event: &str, now_ms: f64) -> Result<(usize, Record), Error> {
        let known = self.last_context.as_ref().map(|(raw, _)| &**raw);
        let mut parsed = packed::parse_after(event, known)?;
        let timestamp;
        let fields: Box<str> = if parsed.needs_timestamp {
            timestamp = (now_ms.max(0.0).floor() as u64).to_string();
            parsed.fields[packed::data::TIMESTAMP] = &timestamp;
            fill_timestamp(parsed.data, &timestamp).into()
        } else {
            parsed.data.into()
        };
        let context = self.context_id(parsed.context);
        let ctx = &self.contexts[context];
        let bytes = wire::visitor_bytes(ctx, parsed.kind, &parsed.fields);
        let single = ctx.single_body_bytes(bytes);
        if single > self.config.max_payload_bytes {
            return Err(Error::EventTooLarge {
                bytes: single,
                max: self.config.max_payload_bytes,
            });
        }
        let record = Record {
            kind: parsed.kind,
            bytes,
            fields,
        };
        Ok((context, record))
    }

    /// `true` when `n` more events fit under `max_queue_size` (pending plus held).
    fn has_room(&self, n: usize) -> bool {
        self.queue.len() + self.held_events + n <= self.config.max_queue_size
    }

    /// Adds a record to its context's pending group, sealing the group first when the
    /// record would push its body over `max_payload_bytes`, and after when the group
    /// reaches `batch_size`.
    fn enqueue(&mut self, context: usize, record: Record, now_ms: f64) {
        let header = self.contexts[context].header.len();
        if let Some(group) = self.queue.group(context) {
            if group.body_bytes_with(header, record.bytes) > self.config.max_payload_bytes {
                self.seal_context(context);
            }
        }
        if self.queue.push(context, record, now_ms) >= self.config.batch_size {
            self.seal_context(context);
        }
    }

    /// When the processor next needs [`Processor::handle_timeout`], in `now_ms` time:
    /// the flush deadline of the oldest pending batch, or the end of a retry wait.
    pub fn poll_timeout(&self) -> Option<f64> {
        let flush = self
            .queue
            .oldest()
            .map(|t| t + self.config.flush_interval_ms);
        let retries = if self.waiting == 0 {
            None
        } else {
            self.batches
                .iter()
                .filter_map(|b| match b.state {
                    State::Waiting(t) => Some(t),
                    _ => None,
                })
                .reduce(f64::min)
        };
        let pauses = self.paused.iter().map(|(_, t)| *t);
        flush
            .into_iter()
            .chain(retries)
            .chain(pauses)
            .reduce(f64::min)
    }

    /// Seals every batch whose flush interval has passed and wakes the batches whose
    /// retry wait is over.
    pub fn handle_timeout(&mut self, now_ms: f64) {
        let due = self
            .queue
            .take_older_than(now_ms - self.config.flush_interval_ms);
        for group in due {
            self.seal(group);
        }
        // The scans below run on every call from the JS layer: skip them when there is
        // nothing to find, so that process() stays cheap with many batches in flight.
        if self.waiting > 0 {
            for b in self.batches.iter_mut() {
                if matches!(b.state, State::Waiting(t) if t <= now_ms) {
                    b.state = State::Ready;
                    self.waiting -= 1;
                    self.dirty = true;
                }
            }
        }
        let paused = self.paused.len();
        self.paused.retain(|(_, until)| *until > now_ms);
        self.dirty |= paused != self.paused.len();
        // A send whose outcome never came (in workerd, a fetch of a request that ended
        // is dropped silently) counts as a network error once it is overdue. Checked at
        // most once a second.
        if let Some(limit) = self
            .config
            .in_flight_limit_ms
            .filter(|_| now_ms >= self.last_stale_check + STALE_CHECK_EVERY_MS)
        {
            self.last_stale_check = now_ms;
            let stale: Vec<u64> = self
                .batches
                .iter()
                .filter(|b| matches!(b.state, State::InFlight(t) if t + limit <= now_ms))
                .map(|b| b.id)
                .collect();
            for id in stale {
                self.on_dispatch_result(id, Outcome::NETWORK_ERROR, now_ms);
            }
        }
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

    /// Every batch that may be sent now, in the order they were sealed: one pass over
    /// the batches, however many go (see [`Lane`]).
    pub fn poll_dispatches(&mut self, now_ms: f64) -> Vec<Dispatch> {
        if !self.dirty || !self.batches.iter().any(|b| b.state == State::Ready) {
            return Vec::new();
        }
        let sendable: Vec<usize> = self
            .lanes(now_ms)
            .into_iter()
            .enumerate()
            .filter(|(_, lane)| *lane == Lane::Sendable)
            .map(|(i, _)| i)
            .collect();
        self.dirty = false;
        sendable
            .into_iter()
            .map(|i| self.hand_out(i, now_ms))
            .collect()
    }

    /// The next batch to send now, if any, in the order batches were sealed; see
    /// [`Lane`] for what may go.
    pub fn poll_dispatch(&mut self, now_ms: f64) -> Option<Dispatch> {
        // Cheap exits, taken on every call while nothing can go (e.g. during an outage).
        if !self.dirty || !self.batches.iter().any(|b| b.state == State::Ready) {
            return None;
        }
        let Some(chosen) = self
            .lanes(now_ms)
            .into_iter()
            .position(|lane| lane == Lane::Sendable)
        else {
            self.dirty = false;
            return None;
        };
        Some(self.hand_out(chosen, now_ms))
    }

    /// Marks batch `i` in flight.
    fn hand_out(&mut self, i: usize, now_ms: f64) -> Dispatch {
        let b = &mut self.batches[i];
        b.state = State::InFlight(now_ms);
        let first_attempt = !b.sent_before;
        if b.sent_before {
            self.stats.retried += 1;
        }
        b.sent_before = true;
        Dispatch {
            id: b.id,
            url: b.url.to_string(),
            events: b.events(),
            first_attempt,
        }
    }

    /// Where each sealed batch stands, in order.
    fn lanes(&self, now_ms: f64) -> Vec<Lane> {
        let mut stalled = VisitorSet::default();
        let any_paused = self.paused.iter().any(|(_, until)| *until > now_ms);
        let mut lanes = Vec::with_capacity(self.batches.len());
        for b in &self.batches {
            let shares =
                |set: &VisitorSet| !set.is_empty() && b.visitors.iter().any(|v| set.contains(v));
            let paused = any_paused
                && self
                    .paused
                    .iter()
                    .any(|(url, until)| *url == b.url && *until > now_ms);
            let lane = match b.state {
                State::InFlight(_) => Lane::InFlight,
                State::Waiting(_) => Lane::Stalled,
                State::Ready if paused || shares(&stalled) => Lane::Stalled,
                State::Ready => Lane::Sendable,
            };
            // A batch that failed before holds back its visitors' later batches until
            // it settles, even while it is being retried.
            if lane == Lane::Stalled || b.failed_before {
                stalled.extend(b.visitors.iter().copied());
            }
            lanes.push(lane);
        }
        lanes
    }

    /// Ids of the batches being sent or that will be sent without waiting for a
    /// retry: not those settled, waiting for a retry, behind an endpoint paused by
    /// `Retry-After`, or queued behind such a batch for one of their visitors.
    /// `flush()` waits on these, so that it never waits out a backoff. One pass over
    /// the batches, however many ids the caller checks.
    pub fn moving_ids(&self, now_ms: f64) -> HashSet<u64> {
        self.batches
            .iter()
            .zip(self.lanes(now_ms))
            .filter(|(_, lane)| *lane != Lane::Stalled)
            .map(|(b, _)| b.id)
            .collect()
    }

    /// Records how the send of batch `id` ended and decides what follows: done, a
    /// retry after a backoff or a `Retry-After` wait, a split in two (413), or giving
    /// up (counted in `failed` and reported by [`Processor::poll_failure`]). Returns
    /// `false` for an id that is not in flight, which is ignored.
    pub fn on_dispatch_result(&mut self, id: u64, outcome: Outcome, now_ms: f64) -> bool {
        let Some(i) = self
            .batches
            .iter()
            .position(|b| b.id == id && matches!(b.state, State::InFlight(_)))
        else {
            return false;
        };
        self.dirty = true;
        let status = match outcome {
            Outcome::Failed { status, .. } => status,
            Outcome::Delivered => None,
        };
        match retry::verdict(outcome) {
            Verdict::Delivered => {
                let b = self.remove(i);
                self.stats.dispatched += b.events() as u64;
                self.stats.batches += 1;
                self.stats.bytes_sent += render_len(&b.context, &b.records) as u64;
            }
            Verdict::Split if self.batches[i].events() > 1 => self.split(i),
            Verdict::Split => self.give_up(i, status, FailReason::TooLarge),
            Verdict::Permanent => self.give_up(i, status, FailReason::Rejected),
            Verdict::RetryAfter(wait) => {
                let until = now_ms + wait;
                let url = Rc::clone(&self.batches[i].url);
                self.paused.retain(|(u, _)| *u != url);
                self.paused.push((url, until));
                self.batches[i].state = State::Waiting(until);
                self.waiting += 1;
                self.batches[i].failed_before = true;
            }
            Verdict::Retry => {
                let b = &mut self.batches[i];
                if b.retries < self.config.retry.max_retries {
                    let wait = self
                        .config
                        .retry
                        .backoff_ms(b.retries, self.jitter.next_unit());
                    b.retries += 1;
                    b.failed_before = true;
                    b.state = State::Waiting(now_ms + wait);
                    self.waiting += 1;
                } else {
                    self.give_up(i, status, FailReason::RetriesExhausted);
                }
            }
        }
        true
    }

    /// The page is going away: seals everything pending and hands out every batch
    /// that is neither in flight nor failed before, at once, re-chunked into bodies of
    /// at most `max_body` bytes, for a beacon or a `keepalive` request. Order and
    /// backoff are ignored: there is no later.
    ///
    /// Kept as they are: batches in flight (sending them again would duplicate them
    /// whenever the page survives, as on a tab switch; persisted, a page that really
    /// unloads leaves them to the next page), batches that failed before (a beacon is
    /// fire-and-forget, so a collector that is down would lose them) and events too
    /// large for `max_body` alone.
    pub fn drain_for_unload(&mut self, max_body: usize) -> Vec<Dispatch> {
        self.flush();
        let (kept, batches): (VecDeque<Batch>, VecDeque<Batch>) = self
            .batches
            .drain(..)
            .partition(|b| b.failed_before || matches!(b.state, State::InFlight(_)));
        self.held_events = kept.iter().map(Batch::events).sum();
        self.batches = kept;
        self.dirty = true;
        self.version += 1;
        let mut out = Vec::new();
        for b in batches {
            let header = b.context.header.len() + BODY_TAIL.len();
            let mut chunk: Vec<Record> = Vec::new();
            let mut size = header;
            let mut oversized = Vec::new();
            for r in b.records {
                if header + r.bytes > max_body {
                    oversized.push(r);
                    continue;
                }
                let extra = r.bytes + usize::from(!chunk.is_empty());
                if !chunk.is_empty() && size + extra > max_body {
                    out.push(self.unload_batch(
                        &b.context,
                        &b.url,
                        std::mem::take(&mut chunk),
                        b.sent_before,
                    ));
                    size = header;
                }
                size += r.bytes + usize::from(!chunk.is_empty());
                chunk.push(r);
            }
            if !chunk.is_empty() {
                out.push(self.unload_batch(&b.context, &b.url, chunk, b.sent_before));
            }
            if !oversized.is_empty() {
                self.push_batch(b.context, b.url, oversized, b.retries, b.sent_before, None);
            }
        }
        out
    }

    /// A new batch of `records`, already in flight.
    fn unload_batch(
        &mut self,
        context: &Rc<BatchContext>,
        url: &Rc<str>,
        records: Vec<Record>,
        sent_before: bool,
    ) -> Dispatch {
        let dispatch = Dispatch {
            id: self.next_id,
            url: url.to_string(),
            events: records.len(),
            first_attempt: !sent_before,
        };
        self.push_batch(Rc::clone(context), Rc::clone(url), records, 0, true, None);
        if let Some(b) = self.batches.back_mut() {
            b.state = State::InFlight(f64::INFINITY);
        }
        dispatch
    }

    /// Ids of the batches being sent.
    pub fn in_flight_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.batches
            .iter()
            .filter(|b| matches!(b.state, State::InFlight(_)))
            .map(|b| b.id)
    }

    /// A number that changes whenever the set of [`Processor::unsettled_ids`] may
    /// have changed (a batch sealed, split, delivered, given up or drained): a mirror
    /// of the batches (browser storage) is up to date while it has not.
    pub fn batches_version(&self) -> u64 {
        self.version
    }

    /// Ids of every sealed batch not yet delivered or given up, oldest first.
    pub fn unsettled_ids(&self) -> Vec<u64> {
        self.batches.iter().map(|b| b.id).collect()
    }

    /// The JSON body of an unsettled batch (one handed out, or one to persist),
    /// exactly as it must be sent; the same bytes on every call. `None` once the batch
    /// was delivered, given up or split.
    pub fn body(&self, id: u64) -> Option<String> {
        self.batch(id).map(|b| render(&b.context, &b.records))
    }

    /// The endpoint of an unsettled batch.
    pub fn url(&self, id: u64) -> Option<&str> {
        self.batch(id).map(|b| &*b.url)
    }

    fn batch(&self, id: u64) -> Option<&Batch> {
        self.batches.iter().find(|b| b.id == id)
    }

    /// The next batch given up since the last call.
    pub fn poll_failure(&mut self) -> Option<Failure> {
        self.failures.pop_front()
    }

    /// `true` when nothing is pending, waiting to be sent or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.batches.is_empty()
    }

    /// Ids of the batches that are being sent or will be sent as soon as the batches
    /// ahead of them settle: what `flush()` waits for.
    pub fn unsent_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.batches
            .iter()
            .filter(|b| !matches!(b.state, State::Waiting(_)))
            .map(|b| b.id)
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            queued: self.queue.len(),
            in_flight: self.held_events,
            ..self.stats
        }
    }

    fn context_id(&mut self, raw: &str) -> usize {
        // Fast path: consecutive events nearly always share their context, and comparing
        // the raw fields costs less than building and hashing the key.
        if let Some((last, id)) = &self.last_context {
            if **last == *raw {
                return *id;
            }
        }
        let key = wire::context_key(raw);
        let id = match self.context_ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.contexts.len();
                self.contexts.push(Rc::new(BatchContext::new(raw)));
                self.context_ids.insert(key, id);
                id
            }
        };
        self.last_context = Some((raw.into(), id));
        id
    }

    /// Forgets the known contexts once there are many and no pending event refers to
    /// one (sealed batches hold their own reference). Called before events are
    /// prepared, so that ids handed out while preparing stay valid.
    fn forget_contexts_if_idle(&mut self) {
        if self.contexts.len() >= CONTEXT_TABLE_LIMIT && self.queue.is_empty() {
            self.contexts.clear();
            self.context_ids.clear();
            self.last_context = None;
        }
    }

    fn seal_context(&mut self, context: usize) {
        if let Some(group) = self.queue.take(context) {
            self.seal(group);
        }
    }

    fn seal(&mut self, group: Group) {
        let context = Rc::clone(&self.contexts[group.context]);
        let url = match &self.url {
            Some(url) => Rc::clone(url),
            None => Rc::from(context.endpoint()),
        };
        self.push_batch(context, url, group.records, 0, false, None);
    }

    fn push_batch(
        &mut self,
        context: Rc<BatchContext>,
        url: Rc<str>,
        records: Vec<Record>,
        retries: u32,
        sent_before: bool,
        at: Option<usize>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        self.dirty = true;
        self.version += 1;
        self.held_events += records.len();
        let batch = Batch {
            id,
            context,
            url,
            visitors: visitor_hashes(&records),
            records,
            retries,
            sent_before,
            failed_before: sent_before,
            state: State::Ready,
        };
        match at {
            Some(i) => self.batches.insert(i, batch),
            None => self.batches.push_back(batch),
        }
    }

    fn remove(&mut self, i: usize) -> Batch {
        let b = self
            .batches
            .remove(i)
            .unwrap_or_else(|| unreachable!("index from position()"));
        self.held_events -= b.events();
        self.version += 1;
        b
    }

    fn give_up(&mut self, i: usize, status: Option<u16>, reason: FailReason) {
        let b = self.remove(i);
        self.stats.failed += b.events() as u64;
        self.failures.push_back(Failure {
            id: b.id,
            status,
            events: b.events(),
            reason,
        });
    }

    /// Replaces batch `i` by its two halves, in its place in the order.
    fn split(&mut self, i: usize) {
        let mut b = self.remove(i);
        let second = b.records.split_off(b.records.len() / 2);
        self.push_batch(
            Rc::clone(&b.context),
            Rc::clone(&b.url),
            second,
            b.retries,
            true,
            Some(i),
        );
        self.push_batch(b.context, b.url, b.records, b.retries, true, Some(i));
    }
}

fn visitor_hashes(records: &[Record]) -> Vec<u64> {
    let mut out: Vec<u64> = records
        .iter()
        .map(|r| {
            let user_id = Fields::new(&r.fields, SEP).nth(data::USER_ID);
            let mut h = DefaultHasher::new();
            user_id.hash(&mut h);
            h.finish()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn render_len(context: &BatchContext, records: &[Record]) -> usize {
    context.header.len()
        + records.iter().map(|r| r.bytes).sum::<usize>()
        + records.len().saturating_sub(1)
        + BODY_TAIL.len()
}

/// Writes the body of a batch.
fn render(context: &BatchContext, records: &[Record]) -> String {
    let bytes = render_len(context, records);
    let mut body = String::with_capacity(bytes);
    body.push_str(&context.header);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        wire::write_visitor(&mut body, context, r.kind, &r.fields);
    }
    body.push_str(BODY_TAIL);
    debug_assert_eq!(body.len(), bytes, "byte accounting drifted");
    body
}

/// Puts `timestamp` (`now_ms` as an integer, like `Date.now()`) into an empty timestamp
/// field.
fn fill_timestamp(data: &str, timestamp: &str) -> String {
    let (uuid, rest) = data.split_once(SEP).unwrap_or((data, ""));
    let rest = rest.strip_prefix(SEP).unwrap_or(rest);
    format!("{uuid}{SEP}{timestamp}{SEP}{rest}")
}
