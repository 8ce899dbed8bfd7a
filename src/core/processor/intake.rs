//! Intake: events coming in.
//!
//! Owns validation of packed events (through [`crate::core::packed`]), the context
//! table, the queue limits and adding records to the pending [`Queue`](crate::core::queue::Queue),
//! sealing a group when it is full. Must not hand out, retry or settle batches (that is
//! the batch lifecycle) and must not read a clock: time comes in as `now_ms`.

use std::rc::Rc;

use super::Processor;
use crate::core::error::Error;
use crate::core::packed::{self, SEP};
use crate::core::queue::Record;
use crate::core::wire::{self, BatchContext};

/// Contexts are forgotten once this many are known and nothing is pending.
const CONTEXT_TABLE_LIMIT: usize = 64;

impl Processor {
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
}

/// Puts `timestamp` (`now_ms` as an integer, like `Date.now()`) into an empty timestamp
/// field.
fn fill_timestamp(data: &str, timestamp: &str) -> String {
    let (uuid, rest) = data.split_once(SEP).unwrap_or((data, ""));
    let rest = rest.strip_prefix(SEP).unwrap_or(rest);
    format!("{uuid}{SEP}{timestamp}{SEP}{rest}")
}
