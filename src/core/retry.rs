//! When to try a failed batch again: exponential backoff with full jitter, and
//! `Retry-After`.
//!
//! Defaults, from the anchors: Segment waits 0.5 s × 2ⁿ capped at 60 s, ±10 % jitter,
//! 10 retries; the Optimizely Go SDK 200 ms × 2ⁿ capped at 1 s, no jitter, which gives
//! up within about 2 s and so cannot ride out a collector restart or a mobile network
//! drop. We keep Segment's start (500 ms) and number of retries (10) so that a
//! batch survives about two and a half minutes of outage, cap a single wait at 30 s
//! (so a recovered collector is noticed within 30 s rather than a minute), and use
//! full jitter (a uniformly random wait up to the exponential bound, as in AWS's
//! "Exponential Backoff and Jitter") so that many clients failing together do not
//! retry together.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::processor::Outcome;

/// Longest wait a `Retry-After` header can impose (a hostile or buggy header must not
/// park events forever).
pub const MAX_RETRY_AFTER_MS: f64 = 300_000.0;

/// How failed batches are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Upper bound of the first wait, in ms.
    pub initial_backoff_ms: f64,
    /// Upper bound of any wait, in ms.
    pub max_backoff_ms: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 10,
            initial_backoff_ms: 500.0,
            max_backoff_ms: 30_000.0,
        }
    }
}

impl RetryPolicy {
    /// No retries at all (`retry: false`).
    pub const DISABLED: RetryPolicy = RetryPolicy {
        max_retries: 0,
        initial_backoff_ms: 0.0,
        max_backoff_ms: 0.0,
    };

    /// The wait before retry number `retry` (0-based), given `unit` uniform in [0, 1):
    /// full jitter over `min(max_backoff, initial_backoff × 2^retry)`.
    pub fn backoff_ms(&self, retry: u32, unit: f64) -> f64 {
        let bound = self.initial_backoff_ms * 2f64.powi(retry.min(62) as i32);
        bound.min(self.max_backoff_ms) * unit.clamp(0.0, 1.0)
    }
}

/// What to do with a batch after one attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Done.
    Delivered,
    /// Try again after a backoff (network error, timeout, 408, 429, 5xx).
    Retry,
    /// Try again once the endpoint's `Retry-After` wait (ms from now) has passed; this
    /// uses no retry attempt.
    RetryAfter(f64),
    /// 413 Payload Too Large: split the batch in two.
    Split,
    /// Any other status: do not retry.
    Permanent,
}

/// Classifies the outcome of one attempt.
pub fn verdict(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Delivered => Verdict::Delivered,
        Outcome::Failed {
            status,
            retry_after_ms,
        } => match status {
            None => Verdict::Retry,
            Some(413) => Verdict::Split,
            Some(429 | 503) => match retry_after_ms {
                Some(ms) if ms.is_finite() => {
                    Verdict::RetryAfter(ms.clamp(0.0, MAX_RETRY_AFTER_MS))
                }
                _ => Verdict::Retry,
            },
            Some(408 | 500..=599) => Verdict::Retry,
            Some(_) => Verdict::Permanent,
        },
    }
}

/// Parses a `Retry-After` header (delay in seconds, or an HTTP date) into a wait in
/// ms from `now_ms`, capped at [`MAX_RETRY_AFTER_MS`]. `None` when it is malformed.
pub fn parse_retry_after(value: &str, now_ms: f64) -> Option<f64> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Integer parsing keeps float parsing out of the wasm.
        value.parse::<u64>().ok()? as f64 * 1000.0
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        let at_ms = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as f64;
        at_ms - now_ms
    };
    Some(wait.clamp(0.0, MAX_RETRY_AFTER_MS))
}

/// A small deterministic generator for jitter (xorshift64*): the core has no access to
/// the platform's randomness, so the caller seeds it.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from any seed (0 is remapped).
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed.max(1))
    }

    /// A number uniform in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Milliseconds since the epoch of a `SystemTime` (for tests and callers with one).
pub fn system_time_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: Option<u16>, retry_after_ms: Option<f64>) -> Outcome {
        Outcome::Failed {
            status,
            retry_after_ms,
        }
    }

    #[test]
    fn backoff_is_exponential_capped_and_fully_jittered() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ms(0, 1.0), 500.0);
        assert_eq!(p.backoff_ms(1, 1.0), 1000.0);
        assert_eq!(p.backoff_ms(5, 1.0), 16_000.0);
        assert_eq!(p.backoff_ms(6, 1.0), 30_000.0);
        assert_eq!(p.backoff_ms(1000, 1.0), 30_000.0);
        assert_eq!(p.backoff_ms(3, 0.5), 2000.0);
        assert_eq!(p.backoff_ms(3, 0.0), 0.0);
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(verdict(Outcome::Delivered), Verdict::Delivered);
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(verdict(failed(Some(s), None)), Verdict::Retry, "{s}");
        }
        assert_eq!(verdict(failed(None, None)), Verdict::Retry);
        assert_eq!(verdict(failed(Some(413), None)), Verdict::Split);
        for s in [400, 401, 403, 404, 422, 301, 100] {
            assert_eq!(verdict(failed(Some(s), None)), Verdict::Permanent, "{s}");
        }
        assert_eq!(
            verdict(failed(Some(429), Some(2000.0))),
            Verdict::RetryAfter(2000.0)
        );
        assert_eq!(
            verdict(failed(Some(503), Some(1e9))),
            Verdict::RetryAfter(MAX_RETRY_AFTER_MS)
        );
        // Retry-After is honoured only on 429 and 503.
        assert_eq!(verdict(failed(Some(500), Some(2000.0))), Verdict::Retry);
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0.0), Some(120_000.0));
        assert_eq!(parse_retry_after(" 0 ", 0.0), Some(0.0));
        assert_eq!(parse_retry_after("999999", 0.0), Some(MAX_RETRY_AFTER_MS));
        let now =
            system_time_ms(httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap());
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(60_000.0)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:40:00 GMT", now),
            Some(0.0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn jitter_is_uniform_enough_and_deterministic() {
        let mut a = Jitter::new(42);
        let mut b = Jitter::new(42);
        let xs: Vec<f64> = (0..1000).map(|_| a.next_unit()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert_eq!(xs[0], b.next_unit());
        let mean = xs.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
