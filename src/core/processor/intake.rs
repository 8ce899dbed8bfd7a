//! Intake: events coming in.
//!
//! Owns validation of packed events (through [`crate::core::packed`]), the context
//! table, the queue limits and adding records to the pending [`Queue`](crate::core::queue::Queue),
//! sealing a group when it is full. Must not hand out, retry or settle batches (that is
//! the batch lifecycle) and must not read a clock: time comes in as `now_ms`.

use std::rc::Rc;

use super::{Context, Processor};
use crate::core::error::Error;
use crate::core::packed;
use crate::core::queue::Record;
use crate::core::wire::{self, BatchContext};

/// The context table is swept once it holds this many contexts (and twice as many as
/// after the last sweep): below it, keeping contexts costs less than rebuilding them.
const CONTEXT_TABLE_LIMIT: usize = 64;

/// An event validated and measured, not yet copied: nothing is allocated for an event
/// that is then refused or dropped.
struct Prepared<'a> {
    context: usize,
    /// Length of the context's batch header.
    header: usize,
    kind: packed::Kind,
    bytes: usize,
    data: &'a str,
}

impl Processor {
    /// Accepts one packed event (see [`packed`]).
    ///
    /// Returns `Ok(true)` when it was queued, `Ok(false)` when the queue was full
    /// (`max_queue_size` events or `max_queue_bytes` bytes held) and the event was
    /// dropped (and counted), and an error for an invalid event, an event too large
    /// for any batch, or a closed processor. A refused event leaves the processor as
    /// it was.
    pub fn process(&mut self, event: &str, now_ms: f64) -> Result<bool, Error> {
        self.process_at(event, &|| now_ms)
    }

    /// [`Processor::process`] with the clock read only when the event starts a new
    /// group (the time its flush interval counts from): most events join an open one.
    pub fn process_at(&mut self, event: &str, now_ms: &dyn Fn() -> f64) -> Result<bool, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.sweep_contexts();
        let prepared = self.prepare(event)?;
        if !self.has_room(1, prepared.bytes) {
            self.stats.dropped += 1;
            return Ok(false);
        }
        self.enqueue(prepared, now_ms);
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
        self.sweep_contexts();
        let prepared = events
            .iter()
            .enumerate()
            .map(|(i, event)| self.prepare(event).map_err(|e| e.in_event(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = prepared.iter().map(|p| p.bytes).sum();
        if !self.has_room(prepared.len(), bytes) {
            self.stats.dropped += prepared.len() as u64;
            return Ok(false);
        }
        for p in prepared {
            self.enqueue(p, &|| now_ms);
        }
        Ok(true)
    }

    /// Validates one packed event and measures it, without copying or queuing it.
    fn prepare<'a>(&mut self, event: &'a str) -> Result<Prepared<'a>, Error> {
        let known = self.last_context.as_ref().map(|(raw, _, _)| &**raw);
        // The timestamp is the caller's (wall-clock) value: `now_ms` is monotonic and
        // is never written into an event.
        let parsed = packed::parse_after(event, known)?;
        let (context, ctx) = self.context_id(parsed.context, parsed.known);
        let bytes = wire::visitor_bytes(&ctx, parsed.kind, &parsed.fields, parsed.attributes);
        let single = ctx.single_body_bytes(bytes);
        if single > self.config.max_payload_bytes {
            return Err(Error::EventTooLarge {
                bytes: single,
                max: self.config.max_payload_bytes,
            });
        }
        Ok(Prepared {
            context,
            header: ctx.header.len(),
            kind: parsed.kind,
            bytes,
            data: parsed.data,
        })
    }

    /// `true` when `n` more events of `bytes` in all fit under `max_queue_size` and
    /// `max_queue_bytes` (pending plus held).
    fn has_room(&self, n: usize, bytes: usize) -> bool {
        self.queue.len() + self.held_events + n <= self.config.max_queue_size
            && self.queue.bytes() + self.held_bytes + bytes <= self.config.max_queue_bytes
    }

    /// Adds an event to its context's pending group, sealing the group first when the
    /// event would push its body over `max_payload_bytes`, and after when the group
    /// reaches `batch_size`.
    fn enqueue(&mut self, prepared: Prepared<'_>, now_ms: &dyn Fn() -> f64) {
        let Prepared {
            context,
            header,
            kind,
            bytes,
            data,
        } = prepared;
        if let Some(group) = self.queue.group(context) {
            if group.body_bytes_with(header, bytes) > self.config.max_payload_bytes {
                self.seal_context(context);
            }
        }
        let record = Record {
            kind,
            bytes,
            fields: data.into(),
        };
        if self.queue.push(context, record, now_ms) >= self.config.batch_size {
            self.seal_context(context);
        }
    }

    /// The id and the context of the raw context fields `raw`, added to the table if new.
    /// `known`: `raw` is the last context's (the parser compared them already).
    fn context_id(&mut self, raw: &str, known: bool) -> (usize, Rc<BatchContext>) {
        // Fast path: consecutive events nearly always share their context, and comparing
        // the raw fields costs less than building and hashing the key.
        if let Some((last, id, context)) = &self.last_context {
            if known || **last == *raw {
                return (*id, Rc::clone(context));
            }
        }
        let key = wire::context_key(raw);
        let hash = wire::fnv1a(key.as_bytes());
        let found = self
            .contexts
            .iter()
            .enumerate()
            .find(|(_, c)| c.hash == hash && *c.key == *key)
            .map(|(id, c)| (id, Rc::clone(&c.context)));
        let (id, context) = found.unwrap_or_else(|| {
            let context = Rc::new(BatchContext::new(raw));
            self.contexts.push(Context {
                hash,
                key: key.into(),
                context: Rc::clone(&context),
            });
            (self.contexts.len() - 1, context)
        });
        self.last_context = Some((raw.into(), id, Rc::clone(&context)));
        (id, context)
    }

    /// Forgets the contexts no pending event refers to (sealed batches hold their own
    /// reference), keeping the last one used, so that the table is bounded by what is
    /// pending, not by history. Runs when the table has doubled since the last sweep
    /// (amortized O(1) per event), before events are prepared, so that ids handed out
    /// while preparing stay valid.
    fn sweep_contexts(&mut self) {
        if self.contexts.len() < self.context_sweep_at {
            return;
        }
        let mut remap: Vec<Option<usize>> = vec![None; self.contexts.len()];
        let mut kept = Vec::new();
        let last = self.last_context.as_ref().map(|(_, id, _)| *id);
        for id in self.queue.context_ids().chain(last) {
            if let (Some(slot @ None), Some(c)) = (remap.get_mut(id), self.contexts.get(id)) {
                *slot = Some(kept.len());
                kept.push(c.clone());
            }
        }
        let renumber = |id: &mut usize| *id = remap.get(*id).copied().flatten().unwrap_or(*id);
        for id in self.queue.context_ids_mut() {
            renumber(id);
        }
        if let Some((_, id, _)) = &mut self.last_context {
            renumber(id);
        }
        self.contexts = kept;
        self.context_sweep_at = (2 * self.contexts.len()).max(CONTEXT_TABLE_LIMIT);
    }

    /// Contexts in the table (for tests: it is bounded by the pending events).
    pub fn known_contexts(&self) -> usize {
        self.contexts.len()
    }
}
