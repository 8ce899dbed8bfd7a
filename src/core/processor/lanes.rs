//! The order batches go out in.
//!
//! Owns the [`Lane`] of each sealed batch (sendable, in flight, stalled behind a visitor
//! or a paused endpoint), handing batches out, and the visitor sets that keep each
//! visitor's events in order. Must not change what a send's outcome means (that is
//! [`super::lifecycle`]).

use super::lifecycle::State;
use super::{Dispatch, Processor};
use crate::core::packed::{data, Fields, SEP};
use crate::core::queue::Record;
use crate::core::set::U64Set;
use crate::core::wire::fnv1a;

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

impl Processor {
    /// Every batch that may be sent now, in the order they were sealed: one pass over
    /// the batches, however many go (see `Lane`: per-visitor order, paused endpoints).
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
            .filter_map(|i| self.hand_out(i, now_ms))
            .collect()
    }

    /// The next batch to send now, if any, in the order batches were sealed; see
    /// `Lane` for what may go.
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
        self.hand_out(chosen, now_ms)
    }

    /// Marks batch `i` (an index from `lanes()`: `None` never happens) in flight.
    fn hand_out(&mut self, i: usize, now_ms: f64) -> Option<Dispatch> {
        let b = self.batches.get_mut(i)?;
        b.state = State::InFlight(now_ms);
        let first_attempt = !b.sent_before;
        if b.sent_before {
            self.stats.retried += 1;
        }
        b.sent_before = true;
        Some(Dispatch {
            id: b.id,
            url: String::from(&*b.url),
            events: b.events(),
            first_attempt,
        })
    }

    /// Where each sealed batch stands, in order.
    fn lanes(&self, now_ms: f64) -> Vec<Lane> {
        let mut stalled = U64Set::default();
        let any_paused = self.paused.iter().any(|(_, until)| *until > now_ms);
        let mut lanes = Vec::with_capacity(self.batches.len());
        for b in &self.batches {
            let shares =
                |set: &U64Set| !set.is_empty() && b.visitors.iter().any(|v| set.contains(*v));
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
                for v in &b.visitors {
                    stalled.insert(*v);
                }
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
    pub fn moving_ids(&self, now_ms: f64) -> U64Set {
        let mut ids = U64Set::default();
        for (b, lane) in self.batches.iter().zip(self.lanes(now_ms)) {
            if lane != Lane::Stalled {
                ids.insert(b.id);
            }
        }
        ids
    }
}

/// The visitor hashes of `records`, each once (in order of first appearance; no sort:
/// a sort is kilobytes of wasm, issue 16).
pub(super) fn visitor_hashes(records: &[Record]) -> Vec<u64> {
    let mut seen = U64Set::default();
    let mut out = Vec::new();
    for r in records {
        let user_id = Fields::new(&r.fields, SEP).nth(data::USER_ID);
        let h = fnv1a(user_id.unwrap_or_default().as_bytes());
        if seen.insert(h) {
            out.push(h);
        }
    }
    out
}
