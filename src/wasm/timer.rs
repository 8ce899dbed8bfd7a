//! Time in the wasm layer: the monotonic clock every deadline is measured on, the flush
//! timer (one `setTimeout` on the global scope, through gloo-timers, reset whenever the
//! core's next deadline changes) and the one-shot waits that bound a send or `close()`.
//!
//! Owns: [`now`] and every `setTimeout` delay the processor asks for, clamped to what
//! `setTimeout` can hold. Must not: read the wall clock (`Date.now()` is for event
//! timestamps, HTTP dates and storage ages, which live elsewhere), hold any borrow of the
//! processor, or panic.

use gloo_timers::callback::Timeout;

use super::pump::promise_pair;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;

#[wasm_bindgen]
extern "C" {
    /// The global `performance.now()` (browsers, Node, workerd): monotonic, so setting
    /// the system clock back or forward moves no deadline.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// The clock of every duration and deadline (flush interval, backoff, `Retry-After`
/// waits, stale sends, timeouts), in ms on `performance.now()`'s monotonic scale. Never
/// an event timestamp or a date: those are wall-clock (`Date.now()`).
pub fn now() -> f64 {
    performance_now()
}

/// Longest delay `setTimeout` takes: browsers, Node and workerd keep it as a signed
/// 32-bit integer, and a larger one fires at once (a 1 ms timer loop).
pub const MAX_DELAY_MS: u32 = 2_147_483_647;

/// A `setTimeout` of `ms` (rounded up, clamped to `0..=`[`MAX_DELAY_MS`]; a clamped
/// timer just fires early, and its caller finds its deadline not yet reached).
fn timeout(ms: f64, callback: impl FnOnce() + 'static) -> Timeout {
    // `as` saturates (and maps NaN to 0): no panic.
    let ms = (ms.ceil() as u32).min(MAX_DELAY_MS);
    Timeout::new(ms, callback)
}

/// A single pending wake-up at an absolute [`now`] deadline.
#[derive(Default)]
pub struct Timer {
    pending: Option<(f64, Timeout)>,
}

impl Timer {
    /// Arms the timer for `deadline` (or disarms it with `None`), calling `wake` then.
    /// Keeps the current timeout when the deadline has not changed.
    ///
    /// A deadline already in the past is re-armed: in workerd a timeout set during a
    /// request that has ended never fires, so the caller must not trust it.
    pub fn set(&mut self, deadline: Option<f64>, now_ms: f64, wake: impl FnOnce() + 'static) {
        let current = self.pending.as_ref().map(|(d, _)| *d);
        if current == deadline && deadline.is_some_and(|d| d > now_ms) {
            return;
        }
        // Dropping a gloo `Timeout` clears it.
        self.pending = deadline.map(|d| (d, timeout(d - now_ms, wake)));
    }

    /// Clears the pending timeout. Safe to call from inside the timeout's own
    /// callback: wasm-bindgen defers freeing a closure that is running.
    pub fn cancel(&mut self) {
        self.pending = None;
    }
}

/// A promise that resolves with `value` after `ms` (clamped like every delay here), and
/// the timer behind it: dropping the timer clears it, so an abandoned wait leaves no
/// timer keeping Node alive. `on_expiry` runs just before the promise resolves.
pub fn deadline(ms: u32, value: JsValue, on_expiry: impl FnOnce() + 'static) -> (Promise, Timeout) {
    let (promise, resolve) = promise_pair();
    let timer = timeout(f64::from(ms), move || {
        on_expiry();
        if let Some(resolve) = resolve {
            let _ = resolve.call1(&JsValue::UNDEFINED, &value);
        }
    });
    (promise, timer)
}
