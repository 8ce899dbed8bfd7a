//! The Cloudflare Workers helpers of the class: `flushWith(ctx)`.
//!
//! Owns: keeping a Worker alive (through `ctx.waitUntil`) until what a request
//! processed is sent, within the Workers limits. Must not: arm timers that outlive
//! the cap, or reject. (Whether sends start outside `flush()` in Workers is the pump's
//! `send_anytime`; `queueDispatcher` / `handleQueueBatch` live in pkg/workers.js.)

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::api::BatchEventProcessor;
use super::timer::deadline;

#[wasm_bindgen(module = "/src/wasm/js/runtime.js")]
extern "C" {
    /// `true` in Cloudflare Workers (workerd).
    #[wasm_bindgen(js_name = inWorkers)]
    pub(super) fn in_workers() -> bool;
}

/// Longest `flushWith` keeps a Worker alive: under the 30 s Workers allow after the
/// response.
const FLUSH_WITH_CAP_MS: u32 = 25_000;

#[wasm_bindgen]
impl BatchEventProcessor {
    /// Workers: `flush()` under `ctx.waitUntil`, so that every event processed during
    /// the request is sent before the isolate may go away. The promise handed to
    /// `waitUntil` (and returned) resolves once the flush has settled or after 25 s at
    /// most (Workers allow 30 s of `waitUntil` work), never rejects, and a `waitUntil`
    /// that throws is ignored.
    #[wasm_bindgen(js_name = flushWith, unchecked_return_type = "Promise<void>")]
    pub fn flush_with(
        &self,
        #[wasm_bindgen(unchecked_param_type = "{ waitUntil(promise: Promise<unknown>): void }")]
        ctx: JsValue,
    ) -> Promise {
        let flushed = self.flush();
        let capped = future_to_promise(async move {
            let (cap, _timer) = deadline(FLUSH_WITH_CAP_MS, JsValue::UNDEFINED, || ());
            let _ = JsFuture::from(Promise::race(&Array::of2(&flushed, &cap))).await;
            Ok(JsValue::UNDEFINED)
        });
        if let Ok(wait_until) = js_sys::Reflect::get(&ctx, &JsValue::from_str("waitUntil")) {
            if let Some(f) = wait_until.dyn_ref::<Function>() {
                let _ = f.call1(&ctx, &capped);
            }
        }
        capped
    }
}
