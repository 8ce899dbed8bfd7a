//! The processor's shared state ([`Inner`]) and how work moves: pumping the core
//! (hand out batches, report given-up ones, re-arm the timer), sending one batch and
//! settling it, and the `flush()` / `close()` waiters.
//!
//! Owns: when the core is pumped and how a batch's send is started and settled.
//! Must not: hold a `RefCell` borrow across an `.await` or any call into JS (a
//! listener, a dispatcher, a waiter's `resolve`); know about page lifecycle, storage,
//! the SDK adapter or Workers beyond the `send_anytime` flag.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Promise, Uint8Array};
use serde::ser::{Serialize, SerializeMap};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

use super::dispatch;
use super::lifecycle::{is_offline, keepalive, BatchStore};
use super::listeners::Listeners;
pub(super) use super::timer::now;
use super::timer::{deadline, Timer};
use crate::core::error::push_uint;
use crate::core::{Dispatch, FailReason, Failure, Outcome, Processor};

#[wasm_bindgen(module = "/src/wasm/js/log-event.js")]
extern "C" {
    /// The LogEvent of a batch: `bytes` as given, `body` and `params` decoded from them
    /// on first access.
    #[wasm_bindgen(js_name = makeLogEvent)]
    fn make_log_event_with(url: &JsValue, bytes: &Uint8Array) -> JsValue;
}

thread_local! {
    /// The last batch URL as a JS string: batches nearly always share their URL, and
    /// making it again cost a string decode per batch.
    static LAST_URL: RefCell<Option<(String, JsValue)>> = const { RefCell::new(None) };
}

/// The LogEvent of a batch sent to `url`: `bytes` as given, `body` and `params` decoded
/// from them on first access.
pub(super) fn make_log_event(url: &str, bytes: &Uint8Array) -> JsValue {
    let url = LAST_URL.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((s, v)) if s == url => v.clone(),
            _ => {
                let v = JsValue::from_str(url);
                *last = Some((url.to_owned(), v.clone()));
                v
            }
        }
    });
    make_log_event_with(&url, bytes)
}

#[wasm_bindgen]
extern "C" {
    /// The global `queueMicrotask` (browsers, Node, workerd).
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(task: &JsValue);
}

/// The state behind one `BatchEventProcessor` (and every adapter made from it).
pub(super) struct Inner {
    pub(super) core: RefCell<Processor>,
    pub(super) dispatcher: Option<Function>,
    /// Called with the promise of every send (Workers' `waitUntil`).
    pub(super) wait_until: Option<Function>,
    pub(super) dispatch_timeout_ms: u32,
    pub(super) close_timeout_ms: f64,
    pub(super) dispatch_listeners: Listeners,
    pub(super) error_listeners: Listeners,
    pub(super) timer: RefCell<Timer>,
    /// The sends in flight, cut off at `close()`'s deadline.
    pub(super) in_flight: dispatch::InFlight,
    /// `resolve` functions of `flush()` calls, each with the batch it waits for (a
    /// `Vec`, not a `HashMap`: no hashbrown in the wasm, issue 16).
    pub(super) flush_waiters: RefCell<Vec<(u64, Function)>>,
    /// `resolve` functions waiting for the processor to become idle.
    pub(super) idle_waiters: RefCell<Vec<Function>>,
    pub(super) closing: RefCell<Option<Promise>>,
    /// Removes the page lifecycle and `online` listeners (browsers).
    pub(super) unwatch: RefCell<Vec<Function>>,
    /// Where unconfirmed batches are persisted (browsers), and which are.
    pub(super) store: Option<BatchStore>,
    pub(super) stored: RefCell<Vec<u64>>,
    /// [`Processor::batches_version`] when `stored` was last brought up to date.
    pub(super) stored_version: Cell<Option<u64>>,
    /// Set when `close()` has resolved: no timer is armed any more.
    pub(super) stopped: Cell<bool>,
    /// `false` in Workers without a `waitUntil` option: sends start only inside
    /// `flush()`/`close()`, whose promise the request awaits, never from `process()` or
    /// a timer (a fetch outliving its request is dropped by workerd).
    pub(super) send_anytime: bool,
    /// Set while `flush()` or `close()` pumps.
    pub(super) flushing: Cell<bool>,
    /// Set while a pump waits in a microtask (see [`Inner::pump_soon`]).
    pub(super) pump_scheduled: Cell<bool>,
    /// The processor itself while it holds events (see [`Inner::hold_while_busy`]).
    pub(super) held: RefCell<Option<Rc<Inner>>>,
}

/// A promise and its `resolve` function.
pub(super) fn promise_pair() -> (Promise, Option<Function>) {
    let mut resolve = None;
    let promise = Promise::new(&mut |res, _| resolve = Some(res));
    (promise, resolve)
}

fn resolve_all(waiters: Vec<Function>) {
    for r in waiters {
        let _ = r.call0(&JsValue::UNDEFINED);
    }
}

impl Inner {
    /// Catches up on overdue work, hands out every batch that may go now, reports
    /// given-up batches and re-arms the timer.
    pub(super) fn pump(self: &Rc<Self>) {
        let now = now();
        // Runs on every call, not only from the timer: a timer set during an earlier
        // workerd request may never fire.
        self.core.borrow_mut().handle_timeout(now);
        self.persist();
        // Offline: hold everything (no retry storm) until the `online` event.
        let may_send = self.send_anytime || self.flushing.get() || self.closing.borrow().is_some();
        if may_send && !is_offline() {
            // One pass over the batches hands out everything that may go now.
            let batches = self.core.borrow_mut().poll_dispatches(now);
            for batch in batches {
                self.start(batch);
            }
        }
        loop {
            let failure = self.core.borrow_mut().poll_failure();
            match failure {
                Some(f) => self.error_listeners.notify(&failure_value(&f)),
                None => break,
            }
        }
        self.release_flush_waiters(now);
        let idle = self.core.borrow().is_idle();
        if idle {
            resolve_all(self.idle_waiters.take());
        }
        self.hold_while_busy(!idle);
        // No timer in Workers without `waitUntil`: it would point at a request that
        // may have ended; there every request flushes (`flushWith`) instead.
        if self.stopped.get() || !self.send_anytime {
            return;
        }
        let deadline = self.core.borrow().poll_timeout();
        let weak: Weak<Inner> = Rc::downgrade(self);
        self.timer.borrow_mut().set(deadline, now, move || {
            if let Some(inner) = weak.upgrade() {
                inner.timer.borrow_mut().cancel();
                inner.pump();
            }
        });
    }

    /// Lifetime (DESIGN.md §3): while it holds events, the processor holds itself, so
    /// that neither its timer (which holds it weakly) nor the garbage collector of an
    /// unreferenced JS handle can drop its queue. The cycle is broken as soon as
    /// everything is settled, and when `close()` has given up waiting.
    fn hold_while_busy(self: &Rc<Self>, busy: bool) {
        let keep = busy && !self.stopped.get();
        // Released after the borrow ends (the caller still holds its own `Rc`).
        let released = {
            let mut held = self.held.borrow_mut();
            match (keep, held.is_some()) {
                (true, false) => {
                    *held = Some(Rc::clone(self));
                    None
                }
                (false, true) => held.take(),
                _ => None,
            }
        };
        drop(released);
    }

    /// [`Inner::pump`] once, in a microtask, however many calls ask for it before it
    /// runs: a burst of `process()` calls (a loop, a backlog) hands out its batches in
    /// one pass over the batches held and sets the timer once, instead of once per
    /// event. Nothing is sent earlier than that microtask anyway: a send starts in one.
    /// (With a `waitUntil` option, `process()` pumps at once instead: `waitUntil` must
    /// have each send's promise before the request may end.)
    pub(super) fn pump_soon(self: &Rc<Self>) {
        if self.pump_scheduled.replace(true) {
            return;
        }
        let inner = Rc::clone(self);
        queue_microtask(&Closure::once_into_js(move || {
            inner.pump_scheduled.set(false);
            inner.pump();
        }));
    }

    /// `pump()` allowed to send in Workers too.
    pub(super) fn pump_flushing(self: &Rc<Self>) {
        self.flushing.set(true);
        self.pump();
        self.flushing.set(false);
    }

    fn start(self: &Rc<Self>, batch: Dispatch) {
        self.send(batch, false);
    }

    pub(super) fn send(self: &Rc<Self>, batch: Dispatch, page_hidden: bool) {
        let Dispatch {
            id,
            url,
            first_attempt,
            ..
        } = batch;
        let inner = Rc::clone(self);
        let send = async move {
            // The body is written and crosses into JS only now, in this send's own
            // microtask: a burst of batches handed out together never holds all their
            // bodies at once. It crosses as bytes (one copy out of wasm memory, no JS
            // string unless someone reads `logEvent.body`), and the Rust copy is freed
            // before the send is awaited: an in-flight batch costs wasm memory nothing.
            let Some(body) = inner.body_bytes(id) else {
                return Ok(JsValue::UNDEFINED);
            };
            let log_event = make_log_event(&url, &body);
            if first_attempt {
                inner.dispatch_listeners.notify(&log_event);
            }
            let timeout = inner.dispatch_timeout_ms;
            let outcome = match &inner.dispatcher {
                Some(f) => {
                    dispatch::call(f, &log_event, page_hidden, timeout, &inner.in_flight).await
                }
                None if page_hidden => match JsFuture::from(keepalive(&url, &body)).await {
                    Ok(v) if v.is_truthy() => Some(Outcome::Delivered),
                    _ => Some(Outcome::NETWORK_ERROR),
                },
                None => dispatch::post(&url, &body, timeout, &inner.in_flight).await,
            };
            // `None`: cut off at close()'s deadline, left in flight (pending).
            if let Some(outcome) = outcome {
                inner.settle(id, outcome);
            }
            Ok(JsValue::UNDEFINED)
        };
        match &self.wait_until {
            // A waitUntil that throws (e.g. outside a request) must not break sending.
            Some(wait_until) => {
                let _ = wait_until.call1(&JsValue::UNDEFINED, &future_to_promise(send));
            }
            // No promise is needed: the send starts in a microtask all the same.
            None => spawn_local(async move {
                let _ = send.await;
            }),
        }
    }

    /// The body of batch `id` as a `Uint8Array` of its own (copied out of wasm memory;
    /// the Rust string is dropped before this returns).
    pub(super) fn body_bytes(&self, id: u64) -> Option<Uint8Array> {
        let body = self.core.borrow().body(id)?;
        Some(Uint8Array::from(body.as_bytes()))
    }

    fn settle(self: &Rc<Self>, id: u64, outcome: Outcome) {
        self.core
            .borrow_mut()
            .on_dispatch_result(id, outcome, now());
        self.pump();
    }

    /// Resolves the `flush()` waiters of every batch that is no longer moving (offline,
    /// nothing moves until the `online` event).
    fn release_flush_waiters(&self, now: f64) {
        if self.flush_waiters.borrow().is_empty() {
            return;
        }
        let offline = is_offline();
        let released: Vec<Function> = {
            let moving = self.core.borrow().moving_ids(now);
            let mut waiters = self.flush_waiters.borrow_mut();
            let (done, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut *waiters)
                .into_iter()
                .partition(|(id, _)| offline || !moving.contains(*id));
            *waiters = wait;
            done.into_iter().map(|(_, r)| r).collect()
        };
        resolve_all(released);
    }

    /// A promise that resolves once every batch that is being sent or can be sent
    /// without waiting for a retry has had its attempt.
    pub(super) fn unsent_settled(&self, except: &[u64]) -> Promise {
        let ids: Vec<u64> = self
            .core
            .borrow()
            .unsent_ids()
            .filter(|id| !except.contains(id))
            .collect();
        let all = Array::new();
        for id in ids {
            let (p, resolve) = promise_pair();
            if let Some(r) = resolve {
                self.flush_waiters.borrow_mut().push((id, r));
            }
            all.push(&p);
        }
        self.release_flush_waiters(now());
        future_to_promise(async move {
            // The per-attempt promises never reject.
            let _ = JsFuture::from(Promise::all(&all)).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Resolves when the processor is idle or `close_timeout_ms` has passed, then stops
    /// the timer and reports what is left.
    pub(super) async fn finish(self: Rc<Self>, timeout_ms: f64) -> Result<JsValue, JsValue> {
        let idle = if self.core.borrow().is_idle() {
            Promise::resolve(&JsValue::UNDEFINED)
        } else {
            let (p, resolve) = promise_pair();
            self.idle_waiters.borrow_mut().extend(resolve);
            p
        };
        let ms = timeout_ms.clamp(0.0, u32::MAX as f64) as u32;
        let (timeout, _timer) = deadline(ms, JsValue::UNDEFINED, || ());
        let _ = JsFuture::from(Promise::race(&Array::of2(&idle, &timeout))).await;
        self.stopped.set(true);
        self.timer.borrow_mut().cancel();
        // What is still in flight is aborted and counted as pending: no request or
        // timeout timer outlives close().
        self.in_flight.cut_all();
        // A flush() still waiting (for a send just cut off, or a batch no timer will
        // move any more) resolves now rather than never.
        let flushes: Vec<Function> = self
            .flush_waiters
            .take()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        resolve_all(flushes);
        self.hold_while_busy(false);
        if let Some(store) = &self.store {
            // What is still stored is left to the next page (or another tab).
            store.leave();
        }
        let s = self.core.borrow().stats();
        Ok(to_js(&[
            ("dispatched", Field::Num(s.dispatched as f64)),
            ("failed", Field::Num(s.failed as f64)),
            ("pending", Field::Num((s.queued + s.in_flight) as f64)),
        ]))
    }
}

/// A field value of an object handed to JS (see [`to_js`]).
pub(super) enum Field<'a> {
    /// A number; counts cross as `f64` (exact up to 2^53, far beyond any count).
    Num(f64),
    /// A string.
    Str(&'a str),
    /// `null` (a missing HTTP status).
    Null,
}

/// Named fields, serialized in order as a plain JS object.
struct Fields<'a>(&'a [(&'static str, Field<'a>)]);

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            match value {
                Field::Num(n) => map.serialize_entry(key, n)?,
                Field::Str(t) => map.serialize_entry(key, t)?,
                Field::Null => map.serialize_entry(key, &())?,
            }
        }
        map.end()
    }
}

/// `fields` as a plain JS object, through serde-wasm-bindgen.
///
/// Only for the few small objects handed to JS outside the per-event path (`stats()`,
/// `close()`'s summary, a dispatch failure): issue 16 keeps the crate, used sparingly.
/// A map with string keys rather than derived structs: serde-wasm-bindgen's struct path
/// caches field names in a `HashMap` (966 B gzip more, measured); no `u64` either, whose
/// error path would pull `core::fmt` in. Cannot fail; `undefined` if it ever did.
pub(super) fn to_js(fields: &[(&'static str, Field<'_>)]) -> JsValue {
    Fields(fields)
        .serialize(
            &serde_wasm_bindgen::Serializer::new()
                .serialize_maps_as_objects(true)
                .serialize_missing_as_null(true),
        )
        .unwrap_or(JsValue::UNDEFINED)
}

fn failure_value(f: &Failure) -> JsValue {
    let (reason, why) = match f.reason {
        FailReason::Rejected if matches!(f.status, Some(0 | 300..=399)) => (
            "rejected",
            "the endpoint redirected it, and redirects are not followed (set `endpoint` to the URL that takes the POST)",
        ),
        FailReason::Rejected => ("rejected", "the collector rejected it"),
        FailReason::RetriesExhausted => ("retries-exhausted", "every retry failed"),
        FailReason::TooLarge => (
            "too-large",
            "a single event was too large for the collector",
        ),
    };
    // Pieces and `push_uint`, not `format!`: no `core::fmt` in the wasm.
    let mut message = String::from("gave up a batch of ");
    push_uint(&mut message, f.events as u64);
    message.push_str(" events after ");
    match f.status {
        // Browsers hide a redirect behind an opaque response of status 0.
        Some(0) => message.push_str("a redirect"),
        Some(s) => {
            message.push_str("HTTP ");
            push_uint(&mut message, u64::from(s));
        }
        None => message.push_str("a network error"),
    }
    message.push_str(": ");
    message.push_str(why);
    to_js(&[
        (
            "status",
            f.status.map_or(Field::Null, |s| Field::Num(f64::from(s))),
        ),
        ("events", Field::Num(f.events as f64)),
        ("reason", Field::Str(reason)),
        ("message", Field::Str(&message)),
    ])
}
