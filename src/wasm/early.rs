//! The entry through which the browser entry (pkg/early-processor.js) hands over the
//! events a processor accepted before the wasm module was ready: they were packed by
//! the same JS packer `process()` uses (with their timestamp taken when they were
//! processed) and are queued here in order, as if `process()` had been called then.
//! Must not: pack or validate in any other way than `process()` does, or be part of
//! the public API (it is left out of the TypeScript declarations).

use wasm_bindgen::prelude::*;

use super::api::BatchEventProcessor;
use super::error::Error;
use super::pump::now;
use crate::core;

#[wasm_bindgen]
impl BatchEventProcessor {
    /// Queues one event packed by the JS packer (the layout of `core::packed`).
    /// Returns `true` if accepted, `false` if dropped because the queue is full; throws
    /// the `TypeError` of an invalid event and an `Error` after `close()`. Internal: for
    /// the browser entry's hand-over.
    #[wasm_bindgen(js_name = processPacked, skip_typescript)]
    pub fn process_packed(&self, packed: &str) -> Result<bool, JsValue> {
        if self.inner.core.borrow().is_closed() {
            return Err(Error::Core(core::Error::Closed).into());
        }
        let accepted = self
            .inner
            .core
            .borrow_mut()
            .process_at(packed, &now)
            .map_err(Error::from)?;
        self.inner.pump_soon();
        Ok(accepted)
    }
}
