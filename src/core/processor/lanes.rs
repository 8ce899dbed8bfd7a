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
use crate::core::wire::fnv1a;

/// A set of visitor hashes: open addressing over a power-of-two table, at most half
/// full. The hashes are FNV-1a already; a multiply spreads their bits over the index.
/// `0` marks an empty slot (the hash 0 itself is kept aside). No std `HashSet`: that
/// pulls hashbrown and SipHash into the wasm (issue 16).
#[derive(Default)]
struct VisitorSet {
    slots: Vec<u64>,
    len: usize,
    zero: bool,
}

impl VisitorSet {
    fn slot(v: u64) -> usize {
        (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && !self.zero
    }

    fn contains(&self, v: u64) -> bool {
        if v == 0 {
            return self.zero;
        }
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = Self::slot(v);
        loop {
            match self.slots.get(i & mask) {
                Some(&s) if s == v => return true,
                Some(&0) | None => return false,
                Some(_) => i = i.wrapping_add(1),
            }
        }
    }

    fn insert(&mut self, v: u64) {
        if v == 0 {
            self.zero = true;
            return;
        }
        if 2 * (self.len + 1) > self.slots.len() {
            let size = (2 * self.slots.len()).max(16);
            let old = std::mem::replace(&mut self.slots, vec![0; size]);
            self.len = 0;
            for v in old.into_iter().filter(|v| *v != 0) {
                self.insert(v);
            }
        }
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = Self::slot(v);
        loop {
            match self.slots.get_mut(i & mask) {
                Some(s) if *s == v => return,
                Some(s) if *s == 0 => {
                    *s = v;
                    self.len += 1;
                    return;
                }
                Some(_) => i = i.wrapping_add(1),
                None => return,
            }
        }
    }
}

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
            .map(|i| self.hand_out(i, now_ms))
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
            url: String::from(&*b.url),
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
                |set: &VisitorSet| !set.is_empty() && b.visitors.iter().any(|v| set.contains(*v));
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
    /// the batches, however many ids the caller checks: sorted, for `binary_search`.
    pub fn moving_ids(&self, now_ms: f64) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .batches
            .iter()
            .zip(self.lanes(now_ms))
            .filter(|(_, lane)| *lane != Lane::Stalled)
            .map(|(b, _)| b.id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

pub(super) fn visitor_hashes(records: &[Record]) -> Vec<u64> {
    let mut out: Vec<u64> = records
        .iter()
        .map(|r| {
            let user_id = Fields::new(&r.fields, SEP).nth(data::USER_ID);
            fnv1a(user_id.unwrap_or_default().as_bytes())
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::VisitorSet;

    #[test]
    fn visitor_set_holds_what_was_inserted_and_nothing_else() {
        let mut set = VisitorSet::default();
        assert!(set.is_empty() && !set.contains(0) && !set.contains(7));
        set.insert(0);
        assert!(!set.is_empty() && set.contains(0) && !set.contains(7));
        // Enough to grow the table several times, with colliding low bits.
        let inserted: Vec<u64> = (1..=500u64).map(|i| i << 40).collect();
        for v in &inserted {
            set.insert(*v);
            set.insert(*v);
        }
        assert_eq!(set.len, inserted.len());
        assert!(inserted.iter().all(|v| set.contains(*v)));
        assert!((1..=500u64).all(|i| !set.contains((i << 40) + 1)));
    }
}
