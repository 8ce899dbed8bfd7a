//! The flush timer: one `setTimeout` on the global scope (through gloo-timers), reset
//! whenever the core's next deadline changes.

use gloo_timers::callback::Timeout;

/// A single pending wake-up at an absolute `Date.now()` deadline.
#[derive(Default)]
pub struct Timer {
    pending: Option<(f64, Timeout)>,
}

impl Timer {
    /// Arms the timer for `deadline` (or disarms it with `None`), calling `wake` then.
    /// Keeps the current timeout when the deadline has not changed.
    pub fn set(&mut self, deadline: Option<f64>, now_ms: f64, wake: impl FnOnce() + 'static) {
        if self.pending.as_ref().map(|(d, _)| *d) == deadline {
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
