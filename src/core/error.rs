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
                field: {
                    let mut f = String::with_capacity(field.len() + 12);
                    f.push_str("events[");
                    push_uint(&mut f, index as u64);
                    f.push_str("].");
                    f.push_str(&field);
                    f
                },
                rule,
                got,
            },
            other => other,
        }
    }

    /// The message of the error, as [`Display`](fmt::Display) writes it, built without
    /// `core::fmt` (the wasm layer uses this: formatting machinery costs kilobytes of
    /// wasm).
    pub fn message(&self) -> String {
        let mut m = String::new();
        match self {
            Error::InvalidEvent { field, rule, got } => {
                for part in [field.as_str(), " must be ", rule, ", got ", got.as_str()] {
                    m.push_str(part);
                }
            }
            Error::EventTooLarge { bytes, max } => {
                m.push_str("event must fit in maxPayloadBytes (");
                push_uint(&mut m, *max as u64);
                m.push_str(" bytes) as a batch of one, got ");
                push_uint(&mut m, *bytes as u64);
                m.push_str(" bytes");
            }
            Error::Closed => m.push_str("the processor is closed: process() after close()"),
        }
        m
    }

    /// `true` for errors caused by the caller's input (a JS `TypeError`).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Error::Closed)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Appends the decimal digits of `n` to `out`: messages with numbers in them, without
/// `core::fmt` (see [`Error::message`]).
pub fn push_uint(out: &mut String, mut n: u64) {
    // Least significant digit first, from the end; divisions by constants only and
    // no indexing (no panic path).
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    let digits = digits.get(start..).unwrap_or_default();
    out.push_str(std::str::from_utf8(digits).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_uint_writes_decimal_digits() {
        for n in [0, 7, 9, 10, 99, 100, 1_234_567_890, u64::MAX - 1, u64::MAX] {
            let mut s = String::from("x");
            push_uint(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn messages_read_as_before() {
        let e = Error::InvalidEvent {
            field: "user.id".into(),
            rule: "a string",
            got: "42".into(),
        };
        assert_eq!(e.message(), "user.id must be a string, got 42");
        assert_eq!(
            e.in_event(12).to_string(),
            "events[12].user.id must be a string, got 42"
        );
        let e = Error::EventTooLarge {
            bytes: 70_001,
            max: 65_536,
        };
        assert_eq!(
            e.message(),
            "event must fit in maxPayloadBytes (65536 bytes) as a batch of one, got 70001 bytes"
        );
        assert_eq!(
            Error::Closed.to_string(),
            "the processor is closed: process() after close()"
        );
    }
}
