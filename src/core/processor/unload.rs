//! Draining for a page that is going away.
//!
//! Owns [`Processor::drain_for_unload`]: re-chunking every batch that may go into
//! bodies small enough for a beacon. Must not touch batches in flight, that failed
//! before or that wait behind either (per visitor or a paused endpoint), and must not
//! decide how a beacon is sent (that is the wasm layer).

use std::collections::VecDeque;
use std::rc::Rc;

use super::lifecycle::{Batch, State};
use super::{Dispatch, Processor};
use crate::core::queue::Record;
use crate::core::wire::{BatchContext, BODY_TAIL};

impl Processor {
    /// The page is going away: seals everything pending and hands out every batch
    /// that would go now without waiting (see [`Processor::moving_ids`]), at once,
    /// re-chunked into bodies of at most `max_body` bytes, for a beacon or a
    /// `keepalive` request. The order between visitors and the pacing are not kept:
    /// there is no later.
    ///
    /// Kept as they are: batches in flight (sending them again would duplicate them
    /// whenever the page survives, as on a tab switch; persisted, a page that really
    /// unloads leaves them to the next page), batches that failed before (a beacon is
    /// fire-and-forget, so a collector that is down would lose them), batches stalled
    /// behind those for one of their visitors or behind a `Retry-After` pause (never
    /// sent, but their collector is failing too, and sending them would put a visitor's
    /// later events before earlier ones) and events too large for `max_body` alone.
    pub fn drain_for_unload(&mut self, max_body: usize) -> Vec<Dispatch> {
        self.flush();
        // No clock here: at `-inf`, every `Retry-After` pause that `handle_timeout` has
        // not cleared yet still counts. Erring that way only keeps a batch that could
        // have gone, which is safe; an endpoint is never unpaused early.
        let moving = self.moving_ids(f64::NEG_INFINITY);
        let (kept, batches): (VecDeque<Batch>, VecDeque<Batch>) = std::mem::take(&mut self.batches)
            .into_iter()
            .partition(|b| {
                b.failed_before || matches!(b.state, State::InFlight(_)) || !moving.contains(b.id)
            });
        self.held_events = kept.iter().map(Batch::events).sum();
        self.held_bytes = kept.iter().flat_map(|b| &b.records).map(|r| r.bytes).sum();
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
            url: String::from(&**url),
            events: records.len(),
            first_attempt: !sent_before,
        };
        self.push_batch(Rc::clone(context), Rc::clone(url), records, 0, true, None);
        if let Some(b) = self.batches.back_mut() {
            b.state = State::InFlight(f64::INFINITY);
        }
        dispatch
    }
}
