//! When to try a failed batch again: exponential backoff with full jitter, and
//! `Retry-After`.
//!
//! `Retry-After` arrives as a wait in ms, already computed by the caller (an HTTP date
//! is wall-clock time, which the core never reads); it is honoured on 429 and 503,
//! capped at [`MAX_RETRY_AFTER_MS`], never shorter than the backoff, and uses a retry
//! like any other failure, so `maxRetries` bounds it. Must not read a clock or parse
//! headers.
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
    /// Try again (network error, timeout, 408, 429, 5xx) after the backoff, or after
    /// the `Retry-After` wait in ms (429 and 503 only, capped at
    /// [`MAX_RETRY_AFTER_MS`]) when that is longer. Either way it uses a retry.
    Retry(Option<f64>),
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
            None => Verdict::Retry(None),
            Some(413) => Verdict::Split,
            Some(429 | 503) => Verdict::Retry(
                retry_after_ms
                    .filter(|ms| !ms.is_nan())
                    .map(|ms| ms.clamp(0.0, MAX_RETRY_AFTER_MS)),
            ),
            Some(408 | 500..=599) => Verdict::Retry(None),
            Some(_) => Verdict::Permanent,
        },
    }
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
            assert_eq!(verdict(failed(Some(s), None)), Verdict::Retry(None), "{s}");
        }
        assert_eq!(verdict(failed(None, None)), Verdict::Retry(None));
        assert_eq!(verdict(failed(Some(413), None)), Verdict::Split);
        for s in [400, 401, 403, 404, 422, 301, 100] {
            assert_eq!(verdict(failed(Some(s), None)), Verdict::Permanent, "{s}");
        }
        assert_eq!(
            verdict(failed(Some(429), Some(2000.0))),
            Verdict::Retry(Some(2000.0))
        );
        assert_eq!(
            verdict(failed(Some(503), Some(1e9))),
            Verdict::Retry(Some(MAX_RETRY_AFTER_MS))
        );
        // Retry-After is honoured only on 429 and 503.
        assert_eq!(
            verdict(failed(Some(500), Some(2000.0))),
            Verdict::Retry(None)
        );
        // A wait in the past, or none, is no wait; a NaN is no header.
        assert_eq!(
            verdict(failed(Some(429), Some(-5000.0))),
            Verdict::Retry(Some(0.0))
        );
        assert_eq!(
            verdict(failed(Some(429), Some(f64::NAN))),
            Verdict::Retry(None)
        );
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
