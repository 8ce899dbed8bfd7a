//! The life of a sealed batch: sealed, handed out, retried, split, delivered or given up.
//!
//! Owns [`Batch`] and its [`State`], sealing pending groups into batches, timeouts
//! (flush deadlines, retry waits, sends that never got an answer), the verdict on each
//! send and the bodies of unsettled batches. Must not validate events or decide the
//! order batches go out in (that is [`super::lanes`]); never reads a clock.

use std::rc::Rc;

use super::lanes::visitor_hashes;
use super::{FailReason, Failure, Outcome, Processor};
use crate::core::queue::{Group, Record};
use crate::core::retry::{self, Verdict};
use crate::core::wire::{self, BatchContext, BODY_TAIL};

/// Where a sealed batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum State {
    /// Waiting for its turn to be handed out.
    Ready,
    /// Handed to the dispatcher at this time; its outcome is awaited.
    InFlight(f64),
    /// Failed; ready again at this time.
    Waiting(f64),
}

/// A sealed batch: kept in packed form until it is delivered or given up, so that it
/// can be sent again, or split after a 413.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) id: u64,
    pub(super) context: Rc<BatchContext>,
    pub(super) url: Rc<str>,
    pub(super) records: Vec<Record>,
    /// Hashes of the visitor ids in the batch, each once: a batch is not handed out while an
    /// earlier unsettled batch shares a visitor, so each visitor's events keep their order.
    pub(super) visitors: Vec<u64>,
    /// Retries used (a `Retry-After` wait uses one too).
    pub(super) retries: u32,
    /// `false` until first handed out.
    pub(super) sent_before: bool,
    /// `true` once an attempt failed (or the batch is half of a split one).
    pub(super) failed_before: bool,
    pub(super) state: State,
}

impl Batch {
    pub(super) fn events(&self) -> usize {
        self.records.len()
    }
}

/// How often sends that never got an answer are looked for, in ms.
const STALE_CHECK_EVERY_MS: f64 = 1000.0;

impl Processor {
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
                let Some(b) = self.remove(i) else { return true };
                self.stats.dispatched += b.events() as u64;
                self.stats.batches += 1;
                self.stats.bytes_sent += render_len(&b.context, &b.records) as u64;
            }
            Verdict::Split if self.batches.get(i).is_some_and(|b| b.events() > 1) => self.split(i),
            Verdict::Split => self.give_up(i, status, FailReason::TooLarge),
            Verdict::Permanent => self.give_up(i, status, FailReason::Rejected),
            Verdict::Retry(retry_after) => {
                let Some(b) = self.batches.get_mut(i) else {
                    return true;
                };
                if b.retries < self.config.retry.max_retries {
                    // A `Retry-After` wait is a retry like any other: it counts toward
                    // giving up and is never shorter than the backoff would be.
                    let backoff = self
                        .config
                        .retry
                        .backoff_ms(b.retries, self.jitter.next_unit());
                    let until = now_ms + retry_after.map_or(backoff, |ms| ms.max(backoff));
                    b.retries += 1;
                    b.failed_before = true;
                    b.state = State::Waiting(until);
                    self.waiting += 1;
                    if retry_after.is_some() {
                        let url = Rc::clone(&b.url);
                        self.paused.retain(|(u, _)| *u != url);
                        self.paused.push((url, until));
                    }
                } else {
                    self.give_up(i, status, FailReason::RetriesExhausted);
                }
            }
        }
        true
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

    pub(super) fn batch(&self, id: u64) -> Option<&Batch> {
        self.batches.iter().find(|b| b.id == id)
    }

    /// The next batch given up since the last call.
    pub fn poll_failure(&mut self) -> Option<Failure> {
        self.failures.pop_front()
    }

    /// Ids of the batches that are being sent or will be sent as soon as the batches
    /// ahead of them settle: what `flush()` waits for.
    pub fn unsent_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.batches
            .iter()
            .filter(|b| !matches!(b.state, State::Waiting(_)))
            .map(|b| b.id)
    }

    pub(super) fn seal_context(&mut self, context: usize) {
        if let Some(group) = self.queue.take(context) {
            self.seal(group);
        }
    }

    pub(super) fn seal(&mut self, group: Group) {
        // Every pending group's context is in the table (the sweep keeps them).
        let Some(context) = self
            .contexts
            .get(group.context)
            .map(|c| Rc::clone(&c.context))
        else {
            debug_assert!(false, "pending group without a context");
            return;
        };
        let url = match &self.url {
            Some(url) => Rc::clone(url),
            None => Rc::from(context.endpoint()),
        };
        self.push_batch(context, url, group.records, 0, false, None);
    }

    pub(super) fn push_batch(
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
        self.held_bytes += records.iter().map(|r| r.bytes).sum::<usize>();
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
            // The guard makes `insert`'s own bounds assertion dead code (no panic path).
            Some(i) if i <= self.batches.len() => self.batches.insert(i, batch),
            _ => self.batches.push_back(batch),
        }
    }

    /// Removes batch `i` (an index from `position()`: `None` never happens).
    pub(super) fn remove(&mut self, i: usize) -> Option<Batch> {
        let b = self.batches.remove(i)?;
        self.held_events -= b.events();
        self.held_bytes -= b.records.iter().map(|r| r.bytes).sum::<usize>();
        self.version += 1;
        Some(b)
    }

    pub(super) fn give_up(&mut self, i: usize, status: Option<u16>, reason: FailReason) {
        let Some(b) = self.remove(i) else { return };
        self.stats.failed += b.events() as u64;
        self.failures.push_back(Failure {
            id: b.id,
            status,
            events: b.events(),
            reason,
        });
    }

    /// Replaces batch `i` by its two halves, in its place in the order.
    pub(super) fn split(&mut self, i: usize) {
        let Some(mut b) = self.remove(i) else { return };
        let half = b.records.len() / 2;
        let second = if half <= b.records.len() {
            b.records.split_off(half)
        } else {
            Vec::new()
        };
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
