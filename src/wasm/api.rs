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
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::dispatch;
use super::error::Error;
use super::listeners::{notify, Listeners};
use super::options::Options;
use super::packer::with_packed;
use super::timer::{deadline, Timer};
use crate::core::{self, Dispatch, FailReason, Failure, Outcome, Processor, Stats};

#[wasm_bindgen(module = "/src/wasm/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = makeLogEvent)]
    fn make_log_event(url: &str, body: &JsValue) -> JsValue;
    /// A value as error messages show it (strings quoted).
    pub(crate) fn show(value: &JsValue) -> String;
    #[wasm_bindgen(catch)]
    fn unbatch(log_event: &JsValue) -> Result<Vec<String>, JsValue>;
    #[wasm_bindgen(js_name = wireField)]
    fn wire_field(index: u32, field: &str) -> String;
    #[wasm_bindgen(js_name = watchPage)]
    fn watch_page(on_hide: &Function) -> JsValue;
    #[wasm_bindgen(js_name = sendBeacon)]
    fn send_beacon(url: &str, body: &str) -> bool;
    fn keepalive(url: &str, body: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = inWorkers)]
    fn in_workers() -> bool;
    #[wasm_bindgen(js_name = isOffline)]
    fn is_offline() -> bool;
    #[wasm_bindgen(js_name = watchOnline)]
    fn watch_online(on_online: &Function) -> JsValue;

    /// Unconfirmed batches kept across reloads (glue.js).
    type BatchStore;
    #[wasm_bindgen(static_method_of = BatchStore, catch)]
    fn open(option: &JsValue, max_bytes: f64, ttl_ms: f64) -> Result<Option<BatchStore>, JsValue>;
    #[wasm_bindgen(method)]
    fn save(this: &BatchStore, id: f64, url: &str, body: &str) -> bool;
    #[wasm_bindgen(method)]
    fn remove(this: &BatchStore, id: f64);
    #[wasm_bindgen(method)]
    fn recover(this: &BatchStore, take: &Function, stale_ms: f64) -> Promise;
    #[wasm_bindgen(method)]
    fn beat(this: &BatchStore);
    #[wasm_bindgen(method)]
    fn leave(this: &BatchStore);
    #[wasm_bindgen(method, getter)]
    fn errors(this: &BatchStore) -> f64;
}

#[wasm_bindgen]
extern "C" {
    /// The global `queueMicrotask` (browsers, Node, workerd).
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(task: &JsValue);
}

/// A page whose alive mark is older than this is gone: its batches may be recovered.
const STALE_TAB_MS: f64 = 30_000.0;

/// Largest body sent while the page goes away: beacons and keepalive requests are
/// capped at 64 KiB.
const UNLOAD_BODY_BYTES: usize = 64_000;

struct Inner {
    core: RefCell<Processor>,
    dispatcher: Option<Function>,
    /// Called with the promise of every send (Workers' `waitUntil`).
    wait_until: Option<Function>,
    dispatch_timeout_ms: u32,
    close_timeout_ms: f64,
    dispatch_listeners: RefCell<Listeners>,
    error_listeners: RefCell<Listeners>,
    timer: RefCell<Timer>,
    /// `resolve` functions of `flush()` calls, per batch they wait for.
    flush_waiters: RefCell<HashMap<u64, Vec<Function>>>,
    /// `resolve` functions waiting for the processor to become idle.
    idle_waiters: RefCell<Vec<Function>>,
    closing: RefCell<Option<Promise>>,
    /// Removes the page lifecycle and `online` listeners (browsers).
    unwatch: RefCell<Vec<Function>>,
    /// Where unconfirmed batches are persisted (browsers), and which are.
    store: Option<BatchStore>,
    stored: RefCell<Vec<u64>>,
    /// [`Processor::batches_version`] when `stored` was last brought up to date.
    stored_version: Cell<Option<u64>>,
    /// Set when `close()` has resolved: no timer is armed any more.
    stopped: Cell<bool>,
    /// `false` in Workers without a `waitUntil` option: sends start only inside
    /// `flush()`/`close()`, whose promise the request awaits, never from `process()` or
    /// a timer (a fetch outliving its request is dropped by workerd).
    send_anytime: bool,
    /// Set while `flush()` or `close()` pumps.
    flushing: Cell<bool>,
    /// Set while a pump waits in a microtask (see [`Inner::pump_soon`]).
    pump_scheduled: Cell<bool>,
}

/// Longest `flushWith` keeps a Worker alive: under the 30 s Workers allow after the
/// response.
const FLUSH_WITH_CAP_MS: u32 = 25_000;

fn now() -> f64 {
    js_sys::Date::now()
}

/// A promise and its `resolve` function.
fn promise_pair() -> (Promise, Option<Function>) {
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
    fn pump(self: &Rc<Self>) {
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
                Some(f) => notify(self.error_listeners.borrow().snapshot(), &failure_value(&f)),
                None => break,
            }
        }
        self.release_flush_waiters(now);
        if self.core.borrow().is_idle() {
            resolve_all(self.idle_waiters.take());
        }
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

    /// [`Inner::pump`] once, in a microtask, however many calls ask for it before it
    /// runs: a burst of `process()` calls (a loop, a backlog) hands out its batches in
    /// one pass over the batches held and sets the timer once, instead of once per
    /// event. Nothing is sent earlier than that microtask anyway: a send starts in one.
    /// (With a `waitUntil` option, `process()` pumps at once instead: `waitUntil` must
    /// have each send's promise before the request may end.)
    fn pump_soon(self: &Rc<Self>) {
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
    fn pump_flushing(self: &Rc<Self>) {
        self.flushing.set(true);
        self.pump();
        self.flushing.set(false);
    }

    /// The page is being hidden or left: send everything now, in bodies a beacon takes.
    /// The processor goes on working if the page stays or comes back.
    fn on_page_hide(self: &Rc<Self>) {
        if is_offline() {
            // Nothing can go now: keep everything for the next page (or for `online`).
            self.core.borrow_mut().flush();
            self.persist();
            if let Some(store) = &self.store {
                store.leave();
            }
            return;
        }
        let batches = self.core.borrow_mut().drain_for_unload(UNLOAD_BODY_BYTES);
        let mut rest = Vec::new();
        for batch in batches {
            // Without a custom dispatcher, a beacon first. One the browser took counts
            // as delivered right away, before the store is updated: the next page must
            // not recover it too.
            let beaconed = match self.dispatcher {
                Some(_) => None,
                None => self.core.borrow().body(batch.id),
            }
            .filter(|body| send_beacon(&batch.url, body));
            if let Some(body) = beaconed {
                if batch.first_attempt {
                    let log_event = make_log_event(&batch.url, &JsValue::from_str(&body));
                    notify(self.dispatch_listeners.borrow().snapshot(), &log_event);
                }
                self.core
                    .borrow_mut()
                    .on_dispatch_result(batch.id, Outcome::Delivered, now());
            } else {
                rest.push(batch);
            }
        }
        // What is left is stored before it is sent, and old batches are forgotten.
        self.persist();
        if let Some(store) = &self.store {
            store.leave();
        }
        for batch in rest {
            self.send(batch, true);
        }
        self.pump();
    }

    /// Subscribes `on_event` through a glue `watch*` function whose remover is kept
    /// for `close()`; nothing happens where the glue finds nothing to watch.
    fn watch(self: &Rc<Self>, subscribe: fn(&Function) -> JsValue, on_event: fn(&Rc<Inner>)) {
        let weak = Rc::downgrade(self);
        let callback = Closure::<dyn Fn()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                on_event(&inner);
            }
        });
        if let Ok(unwatch) = subscribe(callback.as_ref().unchecked_ref()).dyn_into::<Function>() {
            // The closure lives as long as the listener (until close()).
            callback.forget();
            self.unwatch.borrow_mut().push(unwatch);
        }
    }

    /// Mirrors the core's unsettled batches into the store: new ones are written
    /// (before they are sent), settled or replaced ones removed.
    fn persist(&self) {
        let Some(store) = &self.store else { return };
        // Runs on every pump: nothing to compare while no batch came or went.
        let version = self.core.borrow().batches_version();
        if self.stored_version.replace(Some(version)) == Some(version) {
            return;
        }
        let current = self.core.borrow().unsettled_ids();
        let current_set: std::collections::HashSet<u64> = current.iter().copied().collect();
        let mut stored = self.stored.borrow_mut();
        let stored_before: std::collections::HashSet<u64> = stored.iter().copied().collect();
        stored.retain(|id| {
            let keep = current_set.contains(id);
            if !keep {
                store.remove(*id as f64);
            }
            keep
        });
        let mut changed = false;
        for id in current {
            if stored_before.contains(&id) {
                continue;
            }
            let entry = {
                let core = self.core.borrow();
                core.url(id).map(String::from).zip(core.body(id))
            };
            if let Some((url, body)) = entry {
                // A batch that does not fit the storage cap stays in memory only.
                store.save(id as f64, &url, &body);
                stored.push(id);
                changed = true;
            }
        }
        if changed {
            store.beat();
        }
    }

    /// Re-queues the batches a page that is gone left in the store.
    fn recover(self: &Rc<Self>) {
        let Some(store) = &self.store else { return };
        let weak = Rc::downgrade(self);
        let take = Closure::<dyn Fn(String, String)>::new(move |url: String, body: String| {
            let Some(inner) = weak.upgrade() else { return };
            let log_event = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&log_event, &"url".into(), &url.into());
            let params = js_sys::JSON::parse(&body).unwrap_or(JsValue::UNDEFINED);
            let _ = js_sys::Reflect::set(&log_event, &"params".into(), &params);
            if let Ok(events) = unbatch(&log_event) {
                // Old events go out at once; invalid or unplaceable ones are dropped.
                let _ = inner.core.borrow_mut().process_all(&events, now());
                inner.core.borrow_mut().flush();
                inner.pump();
            }
        });
        let _ = store.recover(take.as_ref().unchecked_ref(), STALE_TAB_MS);
        // The store calls `take` until its (possibly Web-Locked) recovery is over.
        take.forget();
    }

    fn start(self: &Rc<Self>, batch: Dispatch) {
        self.send(batch, false);
    }

    fn send(self: &Rc<Self>, batch: Dispatch, page_hidden: bool) {
        let Dispatch {
            id,
            url,
            first_attempt,
            ..
        } = batch;
        let inner = Rc::clone(self);
        let send = future_to_promise(async move {
            // The body is written and crosses into JS only now, in this send's own
            // microtask: a burst of batches handed out together never holds all their
            // bodies at once (in wasm memory, which never shrinks, or as young JS
            // strings the garbage collector would have to promote). The Rust copy is
            // freed at once, not when the send settles.
            let Some(body) = inner.core.borrow().body(id) else {
                return Ok(JsValue::UNDEFINED);
            };
            let body = JsValue::from_str(&body);
            let log_event = make_log_event(&url, &body);
            if first_attempt {
                notify(inner.dispatch_listeners.borrow().snapshot(), &log_event);
            }
            let timeout = inner.dispatch_timeout_ms;
            let outcome = match &inner.dispatcher {
                Some(f) => dispatch::call(f, &log_event, page_hidden, timeout, now()).await,
                None if page_hidden => match JsFuture::from(keepalive(&url, &body)).await {
                    Ok(v) if v.is_truthy() => Outcome::Delivered,
                    _ => Outcome::NETWORK_ERROR,
                },
                None => dispatch::post(&url, &body, timeout, now()).await,
            };
            inner.settle(id, outcome);
            Ok(JsValue::UNDEFINED)
        });
        if let Some(wait_until) = &self.wait_until {
            // A waitUntil that throws (e.g. outside a request) must not break sending.
            let _ = wait_until.call1(&JsValue::UNDEFINED, &send);
        }
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
            let done: Vec<u64> = waiters
                .keys()
                .copied()
                .filter(|id| offline || !moving.contains(id))
                .collect();
            done.iter()
                .filter_map(|id| waiters.remove(id))
                .flatten()
                .collect()
        };
        resolve_all(released);
    }

    /// A promise that resolves once every batch that is being sent or can be sent
    /// without waiting for a retry has had its attempt.
    fn unsent_settled(&self, except: &[u64]) -> Promise {
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
                self.flush_waiters
                    .borrow_mut()
                    .entry(id)
                    .or_default()
                    .push(r);
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
    async fn finish(self: Rc<Self>, timeout_ms: f64) -> Result<JsValue, JsValue> {
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
        if let Some(store) = &self.store {
            // What is still stored is left to the next page (or another tab).
            store.leave();
        }
        let s = self.core.borrow().stats();
        to_js(&CloseSummary {
            dispatched: s.dispatched,
            failed: s.failed,
            pending: (s.queued + s.in_flight) as u64,
        })
    }
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true))
        .map_err(JsValue::from)
}

#[derive(Serialize)]
struct CloseSummary {
    dispatched: u64,
    failed: u64,
    pending: u64,
}

#[derive(Serialize)]
struct DispatchError {
    status: Option<u16>,
    events: usize,
    reason: &'static str,
    message: String,
}

fn failure_value(f: &Failure) -> JsValue {
    let (reason, why) = match f.reason {
        FailReason::Rejected => ("rejected", "the collector rejected it"),
        FailReason::RetriesExhausted => ("retries-exhausted", "every retry failed"),
        FailReason::TooLarge => (
            "too-large",
            "a single event was too large for the collector",
        ),
    };
    let status = match f.status {
        Some(s) => format!("HTTP {s}"),
        None => "a network error".to_string(),
    };
    let message = format!(
        "gave up a batch of {} events after {status}: {why}",
        f.events
    );
    to_js(&DispatchError {
        status: f.status,
        events: f.events,
        reason,
        message,
    })
    .unwrap_or(JsValue::UNDEFINED)
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

/// The deadline of `close(options)`: `options.timeout` in ms, or `default_ms`.
fn close_timeout(options: Option<&JsValue>, default_ms: f64) -> Result<f64, JsValue> {
    let Some(options) = options.filter(|o| !o.is_undefined() && !o.is_null()) else {
        return Ok(default_ms);
    };
    let timeout = js_sys::Reflect::get(options, &JsValue::from_str("timeout"))?;
    if timeout.is_undefined() {
        return Ok(default_ms);
    }
    match timeout.as_f64() {
        Some(ms) if (0.0..=2_147_483_647.0).contains(&ms) => Ok(ms),
        _ => Err(js_sys::TypeError::new(&format!(
            "close() options.timeout must be a number of ms from 0 to 2147483647, got {}",
            show(&timeout)
        ))
        .into()),
    }
}

/// `events[3].user.id` -> `(Some(3), "user.id")`.
fn split_event_field(field: &str) -> (Option<u32>, &str) {
    field
        .strip_prefix("events[")
        .and_then(|rest| rest.split_once("]."))
        .and_then(|(i, name)| i.parse().ok().map(|i| (Some(i), name)))
        .unwrap_or((None, field))
}

fn status_200() -> JsValue {
    let o = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&o, &JsValue::from_str("statusCode"), &JsValue::from(200));
    o.into()
}

fn function(listener: JsValue) -> Result<Function, JsValue> {
    listener
        .dyn_into::<Function>()
        .map_err(|_| js_sys::TypeError::new("listener must be a function").into())
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
        let processor = BatchEventProcessor {
            inner: Rc::new(Inner {
                core: RefCell::new(Processor::new(options.config)),
                dispatcher: options.dispatcher,
                wait_until: options.wait_until.clone(),
                dispatch_timeout_ms: options.dispatch_timeout_ms,
                close_timeout_ms: options.close_timeout_ms,
                dispatch_listeners: RefCell::new(Listeners::default()),
                error_listeners: RefCell::new(Listeners::default()),
                timer: RefCell::new(Timer::default()),
                flush_waiters: RefCell::new(HashMap::new()),
                idle_waiters: RefCell::new(Vec::new()),
                closing: RefCell::new(None),
                unwatch: RefCell::new(Vec::new()),
                store,
                stored: RefCell::new(Vec::new()),
                stored_version: Cell::new(None),
                stopped: Cell::new(false),
                send_anytime: !in_workers() || options.wait_until.is_some(),
                flushing: Cell::new(false),
                pump_scheduled: Cell::new(false),
            }),
        };
        let inner = &processor.inner;
        if flush_on_hide {
            inner.watch(watch_page, |inner| inner.on_page_hide());
        }
        inner.watch(watch_online, |inner| inner.pump());
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
        let now = now();
        let accepted = with_packed(&event, |packed| {
            self.inner.core.borrow_mut().process(packed, now)
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

    /// Re-batches an already formatted Optimizely LogEvent (`{ url, httpVerb, params }`,
    /// as any Optimizely SDK emits it): its events are validated and queued with
    /// everything else, all or none. Returns `true` when all were queued, `false` when
    /// the queue had no room for all of them (none was queued; all are counted as
    /// dropped). Throws a `TypeError` naming the field of an invalid LogEvent.
    #[wasm_bindgen(js_name = processLogEvent)]
    pub fn process_log_event(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "{ url: string; httpVerb?: string; params: EventBatch }"
        )]
        log_event: JsValue,
    ) -> Result<bool, JsValue> {
        if self.inner.core.borrow().is_closed() {
            return Err(Error::Core(core::Error::Closed).into());
        }
        let events = unbatch(&log_event).map_err(Error::Js)?;
        let accepted = self
            .inner
            .core
            .borrow_mut()
            .process_all(&events, now())
            .map_err(|e| match e {
                // Name the field as the caller wrote it in the LogEvent.
                core::Error::InvalidEvent { field, rule, got } => {
                    let (index, name) = split_event_field(&field);
                    Error::Core(core::Error::InvalidEvent {
                        field: index.map_or(field.clone(), |i| wire_field(i, name)),
                        rule,
                        got,
                    })
                }
                other => Error::Core(other),
            })?;
        self.inner.pump();
        Ok(accepted)
    }

    /// An Optimizely JS SDK `EventDispatcher` that hands every LogEvent to this
    /// processor: use it with the SDK's `createForwardingEventProcessor(...)`.
    /// `dispatchEvent` resolves with `{ statusCode: 200 }` once the events are queued,
    /// and rejects (never drops silently) when the queue is full, the LogEvent is
    /// invalid or the processor is closed.
    #[wasm_bindgen(js_name = asEventDispatcher, unchecked_return_type = "{ dispatchEvent(logEvent: { url: string; httpVerb?: string; params: EventBatch }): Promise<{ statusCode: number }> }")]
    pub fn as_event_dispatcher(&self) -> JsValue {
        let this = BatchEventProcessor {
            inner: Rc::clone(&self.inner),
        };
        let dispatch = Closure::<dyn Fn(JsValue) -> Promise>::new(move |log_event: JsValue| {
            match this.process_log_event(log_event) {
                Ok(true) => Promise::resolve(&status_200()),
                Ok(false) => Promise::reject(
                    &js_sys::Error::new(
                        "batch-event-processor queue is full (maxQueueSize): the events were not accepted",
                    )
                    .into(),
                ),
                Err(e) => Promise::reject(&e),
            }
        });
        let dispatcher = js_sys::Object::new();
        let _ = js_sys::Reflect::set(
            &dispatcher,
            &JsValue::from_str("dispatchEvent"),
            &dispatch.into_js_value(),
        );
        dispatcher.into()
    }

    /// Calls `listener` with each LogEvent when its batch is first handed to the
    /// dispatcher (not again on retries). Returns an id for `removeOnEventDispatch`.
    #[wasm_bindgen(js_name = onEventDispatch)]
    pub fn on_event_dispatch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(logEvent: LogEvent) => void")] listener: JsValue,
    ) -> Result<u32, JsValue> {
        Ok(self
            .inner
            .dispatch_listeners
            .borrow_mut()
            .add(function(listener)?))
    }

    /// Unsubscribes an `onEventDispatch` listener. Returns `true` if it was subscribed.
    #[wasm_bindgen(js_name = removeOnEventDispatch)]
    pub fn remove_on_event_dispatch(&self, id: JsValue) -> bool {
        self.inner.dispatch_listeners.borrow_mut().remove(&id)
    }

    /// Calls `listener` with a `DispatchError` each time a batch is given up (a
    /// non-retryable status, retries exhausted, or a single event too large). Returns
    /// an id for `removeOnDispatchError`.
    #[wasm_bindgen(js_name = onDispatchError)]
    pub fn on_dispatch_error(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(error: DispatchError) => void")] listener: JsValue,
    ) -> Result<u32, JsValue> {
        Ok(self
            .inner
            .error_listeners
            .borrow_mut()
            .add(function(listener)?))
    }

    /// Unsubscribes an `onDispatchError` listener. Returns `true` if it was subscribed.
    #[wasm_bindgen(js_name = removeOnDispatchError)]
    pub fn remove_on_dispatch_error(&self, id: JsValue) -> bool {
        self.inner.error_listeners.borrow_mut().remove(&id)
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
        let timeout_ms = close_timeout(options.as_ref(), self.inner.close_timeout_ms)?;
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
        to_js(&JsStats::from(self.inner.core.borrow().stats())).unwrap_or(JsValue::UNDEFINED)
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
