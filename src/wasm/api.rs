//! The exported `BatchEventProcessor` class (DESIGN.md §3): construction, `process`,
//! listeners, `flush`, `close`, `stats`.
//!
//! Owns: the class and its JS-facing methods, which validate their arguments and then
//! hand the work to the shared state ([`Inner`], in `pump`). Must not: hold a
//! `RefCell` borrow across a call into JS or an `.await`; hold page-lifecycle, SDK or
//! Workers logic (see `lifecycle`, `sdk`, `workers`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::error::Error;
use super::lifecycle::{watch_online, watch_page, BatchStore};
use super::listeners::Listeners;
use super::options::{close_timeout, Options};
use super::packer::with_packed;
use super::pump::{now, to_js, Field, Inner};
use super::timer::Timer;
use super::workers::in_workers;
use crate::core::{self, Processor, Stats};

#[wasm_bindgen(module = "/src/wasm/js/checks.js")]
extern "C" {
    /// A value as error messages show it (strings quoted).
    pub(crate) fn show(value: &JsValue) -> String;
}

/// Batches Optimizely events and dispatches them (see the README for the options).
#[wasm_bindgen]
pub struct BatchEventProcessor {
    pub(super) inner: Rc<Inner>,
}

/// `stats()` as a JS object.
fn stats_value(s: Stats) -> JsValue {
    to_js(&[
        ("queued", Field::Num(s.queued as f64)),
        ("inFlight", Field::Num(s.in_flight as f64)),
        ("dispatched", Field::Num(s.dispatched as f64)),
        ("batches", Field::Num(s.batches as f64)),
        ("retried", Field::Num(s.retried as f64)),
        ("failed", Field::Num(s.failed as f64)),
        ("dropped", Field::Num(s.dropped as f64)),
        ("bytesSent", Field::Num(s.bytes_sent as f64)),
    ])
}

fn function(listener: JsValue) -> Result<Function, JsValue> {
    listener
        .dyn_into::<Function>()
        .map_err(|_| js_sys::TypeError::new("listener must be a function").into())
}

impl BatchEventProcessor {
    /// A processor on parsed options, watching nothing yet.
    fn with(options: Options, store: Option<BatchStore>) -> BatchEventProcessor {
        BatchEventProcessor {
            inner: Rc::new(Inner {
                core: RefCell::new(Processor::new(options.config)),
                dispatcher: options.dispatcher,
                send_anytime: !in_workers() || options.wait_until.is_some(),
                wait_until: options.wait_until,
                dispatch_timeout_ms: options.dispatch_timeout_ms,
                close_timeout_ms: options.close_timeout_ms,
                dispatch_listeners: Listeners::default(),
                error_listeners: Listeners::default(),
                timer: RefCell::new(Timer::default()),
                in_flight: Default::default(),
                flush_waiters: RefCell::new(Vec::new()),
                idle_waiters: RefCell::new(Vec::new()),
                closing: RefCell::new(None),
                unwatch: RefCell::new(Vec::new()),
                store,
                stored: RefCell::new(Vec::new()),
                stored_version: Cell::new(None),
                stopped: Cell::new(false),
                flushing: Cell::new(false),
                pump_scheduled: Cell::new(false),
                held: RefCell::new(None),
            }),
        }
    }
}

#[wasm_bindgen]
impl BatchEventProcessor {
    /// Creates a processor. Throws a `TypeError` naming the option that breaks a rule.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "BatchEventProcessorOptions | undefined")]
        options: JsValue,
    ) -> Result<BatchEventProcessor, JsValue> {
        let options = Options::parse(&options)?;
        let flush_on_hide = options.flush_on_hide;
        let store = BatchStore::open(
            &options.storage,
            options.max_storage_bytes,
            options.storage_ttl_ms,
        )
        .map_err(Error::Js)?;
        let processor = BatchEventProcessor::with(options, store);
        let inner = &processor.inner;
        if flush_on_hide {
            inner.watch(watch_page, |inner, what| inner.on_page_event(&what));
        }
        inner.watch(watch_online, |inner, _| inner.pump());
        inner.recover();
        Ok(processor)
    }

    /// Queues one event. Returns `true` if accepted, `false` if dropped because the
    /// queue is full. Throws a `TypeError` naming the field of an invalid event, and an
    /// `Error` after `close()`.
    pub fn process(
        &self,
        #[wasm_bindgen(unchecked_param_type = "UserEvent")] event: JsValue,
    ) -> Result<bool, JsValue> {
        if self.inner.core.borrow().is_closed() {
            return Err(Error::Core(core::Error::Closed).into());
        }
        let max_bytes = self.inner.core.borrow().config().max_payload_bytes;
        let accepted = with_packed(&event, max_bytes, |packed| {
            // The clock is read only for an event that starts a new group (performance.now,
            // called with the core borrowed: it cannot call back into the processor).
            self.inner.core.borrow_mut().process_at(packed, &now)
        })?
        .map_err(Error::from)?;
        if self.inner.wait_until.is_some() {
            // `waitUntil` gets the promise of a send before `process()` returns: the
            // request may end right after it.
            self.inner.pump();
        } else {
            self.inner.pump_soon();
        }
        Ok(accepted)
    }

    /// Calls `listener` with each LogEvent when its batch is first handed to the
    /// dispatcher (not again on retries). Returns an id for `removeOnEventDispatch`.
    #[wasm_bindgen(js_name = onEventDispatch)]
    pub fn on_event_dispatch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(logEvent: LogEvent) => void")] listener: JsValue,
    ) -> Result<u32, JsValue> {
        Ok(self.inner.dispatch_listeners.add(function(listener)?))
    }

    /// Unsubscribes an `onEventDispatch` listener. Returns `true` if it was subscribed.
    #[wasm_bindgen(js_name = removeOnEventDispatch)]
    pub fn remove_on_event_dispatch(&self, id: JsValue) -> bool {
        self.inner.dispatch_listeners.remove(&id)
    }

    /// Calls `listener` with a `DispatchError` each time a batch is given up (a
    /// non-retryable status, retries exhausted, or a single event too large). Returns
    /// an id for `removeOnDispatchError`.
    #[wasm_bindgen(js_name = onDispatchError)]
    pub fn on_dispatch_error(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(error: DispatchError) => void")] listener: JsValue,
    ) -> Result<u32, JsValue> {
        Ok(self.inner.error_listeners.add(function(listener)?))
    }

    /// Unsubscribes an `onDispatchError` listener. Returns `true` if it was subscribed.
    #[wasm_bindgen(js_name = removeOnDispatchError)]
    pub fn remove_on_dispatch_error(&self, id: JsValue) -> bool {
        self.inner.error_listeners.remove(&id)
    }

    /// Sends everything queued now; resolves once every batch has had its attempt
    /// (delivered, given up, or scheduled for a retry): it never waits out a backoff.
    /// Never rejects.
    ///
    /// In Cloudflare Workers it waits only for the batches this call sends: a batch
    /// already in flight may belong to another request, and workerd never settles a
    /// promise that waits on another request's I/O. There, without the `waitUntil`
    /// option, sends start only in `flush()`/`close()` and no timer is armed.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> Promise {
        let earlier = if in_workers() {
            self.inner.core.borrow().in_flight_ids().collect()
        } else {
            Vec::new()
        };
        self.inner.core.borrow_mut().flush();
        self.inner.pump_flushing();
        self.inner.unsent_settled(&earlier)
    }

    /// Refuses further events, sends everything queued and keeps retrying until all is
    /// delivered or given up, or the deadline passes (`options.timeout`, default the
    /// `closeTimeout` option); then stops its timer and resolves with
    /// `{ dispatched, failed, pending }`. Never rejects; later calls return the same
    /// promise. Throws a `TypeError` for a bad `timeout`.
    #[wasm_bindgen(unchecked_return_type = "Promise<CloseSummary>")]
    pub fn close(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "{ timeout?: number }")] options: Option<
            JsValue,
        >,
    ) -> Result<Promise, JsValue> {
        if let Some(p) = self.inner.closing.borrow().as_ref() {
            return Ok(p.clone());
        }
        let timeout_ms = close_timeout(
            options.as_ref().unwrap_or(&JsValue::UNDEFINED),
            self.inner.close_timeout_ms,
        )?;
        self.inner.core.borrow_mut().close();
        self.inner.pump_flushing();
        for unwatch in self.inner.unwatch.borrow_mut().drain(..) {
            let _ = unwatch.call0(&JsValue::UNDEFINED);
        }
        let p = future_to_promise(Rc::clone(&self.inner).finish(timeout_ms));
        *self.inner.closing.borrow_mut() = Some(p.clone());
        Ok(p)
    }

    /// The counters.
    #[wasm_bindgen(unchecked_return_type = "Stats")]
    pub fn stats(&self) -> JsValue {
        stats_value(self.inner.core.borrow().stats())
    }

    /// `await using p = new BatchEventProcessor(...)`: the same as `close()`.
    #[wasm_bindgen(
        js_name = "[Symbol.asyncDispose]",
        unchecked_return_type = "Promise<CloseSummary>"
    )]
    pub fn async_dispose(&self) -> Promise {
        self.close(None).unwrap_or_else(|e| Promise::reject(&e))
    }

    /// Browsers: how many times persisting failed (quota, storage disabled, corrupted
    /// entries) and processing went on in memory. Kept out of `stats()`, whose shape
    /// is the Go SDK-like contract.
    #[wasm_bindgen(js_name = storageErrors)]
    pub fn storage_errors(&self) -> u32 {
        self.inner.store.as_ref().map_or(0, |s| s.errors() as u32)
    }
}

/// The module's `WebAssembly.Memory`, so benchmarks can add wasm linear memory to the
/// JS heap they measure.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}
