//! The one error type of the core.

use std::fmt;

/// Why the core refused an event or a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A field of the event breaks a rule; the message names the field.
    InvalidEvent {
        /// Path of the field in the input event, e.g. `user.id`.
        field: String,
        /// The rule it breaks, e.g. `a string`.
        rule: &'static str,
        /// A short rendering of what was given.
        got: String,
    },
    /// The event alone, as a batch of one, would exceed `maxPayloadBytes`.
    EventTooLarge {
        /// Size of a batch holding only this event, in UTF-8 bytes.
        bytes: usize,
        /// The configured limit.
        max: usize,
    },
    /// `process` was called after `close`.
    Closed,
}

impl Error {
    /// The same error, its field prefixed with the index of the event in a list
    /// (`events[3].user.id`).
    pub fn in_event(self, index: usize) -> Error {
        match self {
            Error::InvalidEvent { field, rule, got } => Error::InvalidEvent {
                field: format!("events[{index}].{field}"),
                rule,
                got,
            },
            other => other,
        }
    }

    /// `true` for errors caused by the caller's input (a JS `TypeError`).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Error::Closed)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidEvent { field, rule, got } => {
                write!(f, "{field} must be {rule}, got {got}")
            }
            Error::EventTooLarge { bytes, max } => write!(
                f,
                "event must fit in maxPayloadBytes ({max} bytes) as a batch of one, got {bytes} bytes"
            ),
            Error::Closed => f.write_str("the processor is closed: process() after close()"),
        }
    }
}

impl std::error::Error for Error {}
