//! The exported `BatchEventProcessor` class (DESIGN.md §3).
//!
//! One `Rc<Inner>` holds the core and the JS-side state; methods take `&self` and
//! borrow the core only briefly, never across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Promise};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

use super::dispatch;
use super::error::Error;
use super::options::Options;
use super::timer::Timer;
use crate::core::{Dispatch, Outcome, Processor, Stats};

#[wasm_bindgen(module = "/src/wasm/glue.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn pack(event: &JsValue) -> Result<String, JsValue>;
    #[wasm_bindgen(js_name = makeLogEvent)]
    fn make_log_event(url: &str, body: &str) -> JsValue;
}

/// A batch handed out and not yet settled, with the promise `flush()` waits on.
struct Pending {
    done: Promise,
    resolve: Function,
}

struct Inner {
    core: RefCell<Processor>,
    dispatcher: Option<Function>,
    listeners: RefCell<Vec<(u32, Function)>>,
    next_listener: Cell<u32>,
    timer: RefCell<Timer>,
    pending: RefCell<HashMap<u64, Pending>>,
    closing: RefCell<Option<Promise>>,
}

fn now() -> f64 {
    js_sys::Date::now()
}

impl Inner {
    /// Hands every sealed batch to the dispatcher and re-arms the timer.
    fn pump(self: &Rc<Self>) {
        loop {
            let next = self.core.borrow_mut().poll_dispatch();
            match next {
                Some(d) => self.start(d),
                None => break,
            }
        }
        let deadline = self.core.borrow().poll_timeout();
        let weak: Weak<Inner> = Rc::downgrade(self);
        self.timer.borrow_mut().set(deadline, now(), move || {
            if let Some(inner) = weak.upgrade() {
                inner.timer.borrow_mut().cancel();
                inner.core.borrow_mut().handle_timeout(now());
                inner.pump();
            }
        });
    }

    fn start(self: &Rc<Self>, batch: Dispatch) {
        let log_event = make_log_event(&batch.url, &batch.body);
        let listeners: Vec<Function> = self
            .listeners
            .borrow()
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for f in listeners {
            // A listener that throws must not stop the others or the processor.
            let _ = f.call1(&JsValue::UNDEFINED, &log_event);
        }
        let mut resolve = None;
        let done = Promise::new(&mut |res, _| resolve = Some(res));
        if let Some(resolve) = resolve {
            self.pending
                .borrow_mut()
                .insert(batch.id, Pending { done, resolve });
        }
        let inner = Rc::clone(self);
        spawn_local(async move {
            let outcome = match &inner.dispatcher {
                Some(f) => dispatch::call(f, &log_event).await,
                None => dispatch::post(&batch.url, &batch.body).await,
            };
            inner.settle(batch.id, outcome);
        });
    }

    fn settle(self: &Rc<Self>, id: u64, outcome: Outcome) {
        self.core.borrow_mut().on_dispatch_result(id, outcome);
        let pending = self.pending.borrow_mut().remove(&id);
        if let Some(p) = pending {
            let _ = p.resolve.call0(&JsValue::UNDEFINED);
        }
        self.pump();
    }

    /// A promise that resolves once every batch handed out so far has settled.
    fn settled(&self) -> Promise {
        let all: Array = self
            .pending
            .borrow()
            .values()
            .map(|p| p.done.clone())
            .collect();
        future_to_promise(async move {
            // The per-batch promises never reject.
            let _ = JsFuture::from(Promise::all(&all)).await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// Batches Optimizely events and dispatches them (see the README for the options).
#[wasm_bindgen]
pub struct BatchEventProcessor {
    inner: Rc<Inner>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsStats {
    queued: usize,
    in_flight: usize,
    dispatched: u64,
    batches: u64,
    retried: u64,
    failed: u64,
    dropped: u64,
    bytes_sent: u64,
}

impl From<Stats> for JsStats {
    fn from(s: Stats) -> Self {
        JsStats {
            queued: s.queued,
            in_flight: s.in_flight,
            dispatched: s.dispatched,
            batches: s.batches,
            retried: s.retried,
            failed: s.failed,
            dropped: s.dropped,
            bytes_sent: s.bytes_sent,
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
        Ok(BatchEventProcessor {
            inner: Rc::new(Inner {
                core: RefCell::new(Processor::new(options.config)),
                dispatcher: options.dispatcher,
                listeners: RefCell::new(Vec::new()),
                next_listener: Cell::new(1),
                timer: RefCell::new(Timer::default()),
                pending: RefCell::new(HashMap::new()),
                closing: RefCell::new(None),
            }),
        })
    }

    /// Queues one event. Returns `true` if accepted, `false` if dropped because the
    /// queue is full. Throws a `TypeError` naming the field of an invalid event, and an
    /// `Error` after `close()`.
    pub fn process(
        &self,
        #[wasm_bindgen(unchecked_param_type = "UserEvent")] event: JsValue,
    ) -> Result<bool, JsValue> {
        if self.inner.core.borrow().is_closed() {
            return Err(Error::Core(crate::core::Error::Closed).into());
        }
        let packed = pack(&event).map_err(Error::Js)?;
        let accepted = self
            .inner
            .core
            .borrow_mut()
            .process(&packed, now())
            .map_err(Error::from)?;
        self.inner.pump();
        Ok(accepted)
    }

    /// Calls `listener` with each LogEvent when its batch is first handed to the
    /// dispatcher. Returns an id for `removeOnEventDispatch`.
    #[wasm_bindgen(js_name = onEventDispatch)]
    pub fn on_event_dispatch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(logEvent: LogEvent) => void")] listener: JsValue,
    ) -> Result<u32, JsValue> {
        let Ok(f) = listener.dyn_into::<Function>() else {
            return Err(js_sys::TypeError::new("listener must be a function").into());
        };
        let id = self.inner.next_listener.get();
        self.inner.next_listener.set(id + 1);
        self.inner.listeners.borrow_mut().push((id, f));
        Ok(id)
    }

    /// Unsubscribes a listener. Returns `true` if it was subscribed.
    #[wasm_bindgen(js_name = removeOnEventDispatch)]
    pub fn remove_on_event_dispatch(&self, id: JsValue) -> bool {
        let Some(id) = id.as_f64() else { return false };
        let mut listeners = self.inner.listeners.borrow_mut();
        let before = listeners.len();
        listeners.retain(|(l, _)| f64::from(*l) != id);
        listeners.len() != before
    }

    /// Sends everything queued now; resolves once every batch handed out so far has
    /// settled (delivered or failed). Never rejects.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> Promise {
        self.inner.core.borrow_mut().flush();
        self.inner.pump();
        self.inner.settled()
    }

    /// Stops the timer and sends everything queued; resolves once every batch has
    /// settled. Idempotent: later calls return the same promise.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        if let Some(p) = self.inner.closing.borrow().as_ref() {
            return p.clone();
        }
        self.inner.core.borrow_mut().close();
        self.inner.pump();
        self.inner.timer.borrow_mut().cancel();
        let p = self.inner.settled();
        *self.inner.closing.borrow_mut() = Some(p.clone());
        p
    }

    /// The counters.
    #[wasm_bindgen(unchecked_return_type = "Stats")]
    pub fn stats(&self) -> JsValue {
        let stats = JsStats::from(self.inner.core.borrow().stats());
        serde_wasm_bindgen::to_value(&stats).unwrap_or(JsValue::UNDEFINED)
    }
}

/// The module's `WebAssembly.Memory`, so benchmarks can add wasm linear memory to the
/// JS heap they measure.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}
