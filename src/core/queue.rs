//! Events waiting to be batched, grouped by context so that a batch never mixes
//! contexts.

use super::packed::Kind;
use super::wire::BODY_TAIL;

/// One accepted event, kept in packed form until its batch is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Impression or conversion.
    pub kind: Kind,
    /// Size of the rendered visitor, in UTF-8 bytes.
    pub bytes: usize,
    /// The packed data fields (see [`super::packed::data`]).
    pub fields: Box<str>,
}

/// The pending events of one context.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Index of the context in the processor's context table.
    pub context: usize,
    /// The events, oldest first.
    pub records: Vec<Record>,
    /// Sum of the rendered visitor sizes.
    pub visitor_bytes: usize,
    /// When the oldest event was accepted (`now_ms`).
    pub first_at: f64,
}

impl Group {
    /// Size of the batch body these events make with a header of `header_bytes`.
    pub fn body_bytes(&self, header_bytes: usize) -> usize {
        header_bytes + self.visitor_bytes + self.records.len().saturating_sub(1) + BODY_TAIL.len()
    }

    /// Size of the body if `record_bytes` more were added.
    pub fn body_bytes_with(&self, header_bytes: usize, record_bytes: usize) -> usize {
        header_bytes + self.visitor_bytes + record_bytes + self.records.len() + BODY_TAIL.len()
    }
}

/// All pending events.
#[derive(Debug, Default)]
pub struct Queue {
    groups: Vec<Group>,
    len: usize,
    /// Sum of the rendered visitor sizes of every pending event.
    bytes: usize,
}

impl Queue {
    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Rendered size of the pending events, in bytes (see `max_queue_bytes`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The context of each pending group.
    pub fn context_ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups.iter().map(|g| g.context)
    }

    /// The context of each pending group, to renumber them.
    pub fn context_ids_mut(&mut self) -> impl Iterator<Item = &mut usize> + '_ {
        self.groups.iter_mut().map(|g| &mut g.context)
    }

    /// `true` when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pending group of `context`, if any.
    pub fn group(&self, context: usize) -> Option<&Group> {
        self.groups.iter().find(|g| g.context == context)
    }

    /// Adds an event to its context's group and returns that group's size. `now_ms` is
    /// called only when the event starts a new group (its `first_at`).
    pub fn push(&mut self, context: usize, record: Record, now_ms: &dyn Fn() -> f64) -> usize {
        self.len += 1;
        let bytes = record.bytes;
        self.bytes += bytes;
        match self.groups.iter_mut().find(|g| g.context == context) {
            Some(g) => {
                g.visitor_bytes += bytes;
                g.records.push(record);
                g.records.len()
            }
            None => {
                self.groups.push(Group {
                    context,
                    records: vec![record],
                    visitor_bytes: bytes,
                    first_at: now_ms(),
                });
                1
            }
        }
    }

    /// Removes and returns the group of `context`.
    pub fn take(&mut self, context: usize) -> Option<Group> {
        // Not `Vec::remove`: its bounds assertion (with the caller's location) is a
        // panic path in the wasm. Filtering in place keeps the order and the buffer.
        let mut taken = None;
        self.groups = std::mem::take(&mut self.groups)
            .into_iter()
            .filter_map(|g| {
                if taken.is_none() && g.context == context {
                    taken = Some(g);
                    None
                } else {
                    Some(g)
                }
            })
            .collect();
        let g = taken?;
        self.len -= g.records.len();
        self.bytes -= g.visitor_bytes;
        Some(g)
    }

    /// Removes and returns every group whose oldest event was accepted at or before
    /// `cutoff` (all of them with `f64::INFINITY`), oldest first.
    pub fn take_older_than(&mut self, cutoff: f64) -> Vec<Group> {
        // Cheap exit, taken on every call until a group is due.
        if !self.groups.iter().any(|g| g.first_at <= cutoff) {
            return Vec::new();
        }
        let (due, keep): (Vec<Group>, Vec<Group>) = std::mem::take(&mut self.groups)
            .into_iter()
            .partition(|g| g.first_at <= cutoff);
        self.groups = keep;
        self.len -= due.iter().map(|g| g.records.len()).sum::<usize>();
        self.bytes -= due.iter().map(|g| g.visitor_bytes).sum::<usize>();
        due
    }

    /// When the oldest pending event was accepted.
    pub fn oldest(&self) -> Option<f64> {
        self.groups.iter().map(|g| g.first_at).reduce(f64::min)
    }
}
