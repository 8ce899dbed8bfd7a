//! The flush timer: one `setTimeout` on the global scope (through gloo-timers), reset
//! whenever the core's next deadline changes.

use gloo_timers::callback::Timeout;
use js_sys::Promise;
use wasm_bindgen::JsValue;

/// A single pending wake-up at an absolute `Date.now()` deadline.
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
        self.pending = deadline.map(|d| {
            let delay = (d - now_ms).ceil().clamp(0.0, u32::MAX as f64) as u32;
            (d, Timeout::new(delay, wake))
        });
    }

    /// Clears the pending timeout. Safe to call from inside the timeout's own
    /// callback: wasm-bindgen defers freeing a closure that is running.
    pub fn cancel(&mut self) {
        self.pending = None;
    }
}

/// A promise that resolves with `value` after `ms`, and the timer behind it: dropping
/// the timer clears it, so an abandoned wait leaves no timer keeping Node alive.
/// `on_expiry` runs just before the promise resolves.
pub fn deadline(ms: u32, value: JsValue, on_expiry: impl FnOnce() + 'static) -> (Promise, Timeout) {
    let mut resolve = None;
    let promise = Promise::new(&mut |res, _| resolve = Some(res));
    let timer = Timeout::new(ms, move || {
        on_expiry();
        if let Some(resolve) = resolve {
            let _ = resolve.call1(&JsValue::UNDEFINED, &value);
        }
    });
    (promise, timer)
}
