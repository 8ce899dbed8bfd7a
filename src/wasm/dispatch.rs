//! Sending one batch: the default dispatcher (a POST through the global `fetch`) or the
//! user's dispatcher, under a timeout, and how each result maps to an [`Outcome`].
//!
//! Owns: the dispatch timeout and its abort, the sends in flight that `close()` cuts off
//! at its deadline ([`InFlight`]), how a response maps to an [`Outcome`] and reading
//! `Retry-After` (an HTTP date is wall-clock: `Date.parse` against `Date.now()`). The
//! request goes to the global `fetch` from here; its init (`redirect: 'manual'`) and
//! the reading of its response (the body cancelled) are js/page.js's (`requestInit`,
//! `answer`, shared with `keepalive`): two calls, not a shim per web-sys method. Must
//! not: touch the core or hold any borrow of the processor across a call into JS, or
//! follow a redirect.

use std::cell::{Cell, RefCell};

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::RequestInit;

use super::pump::promise_pair;
use super::timer::deadline;
use crate::core::Outcome;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (browsers, Node 18+, workerd): never `window.fetch`.
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Result<Promise, JsValue>;
}

#[wasm_bindgen(module = "/src/wasm/js/page.js")]
extern "C" {
    /// The default dispatcher's init: a POST of `body` as `application/json`,
    /// `redirect: 'manual'`, aborted through the signal of `flags` ([`dispatch_flags`]).
    #[wasm_bindgen(js_name = requestInit)]
    fn request_init(body: &JsValue, flags: &JsValue) -> RequestInit;
    /// `{ statusCode, retryAfter }` of the response `fetch` resolves with, its body
    /// cancelled (never read); rejects when `fetch` rejects or gives no Response.
    fn answer(fetched: &Promise) -> Promise;
}

#[wasm_bindgen(module = "/src/wasm/js/log-event.js")]
extern "C" {
    /// `{ pageHidden, signal }` for a custom dispatcher, its AbortController made only
    /// when `signal` is read.
    #[wasm_bindgen(js_name = dispatchFlags)]
    fn dispatch_flags(page_hidden: bool) -> JsValue;
    /// Aborts the signal of flags from [`dispatch_flags`] (at once, or on its first read).
    #[wasm_bindgen(js_name = abortDispatch)]
    fn abort_dispatch(flags: &JsValue);
    /// `true` for a promise or an object with a `then` method.
    #[wasm_bindgen(js_name = isThenable)]
    fn is_thenable(value: &JsValue) -> bool;
}

thread_local! {
    /// The property names read from every dispatcher result, made into JS strings once.
    static STATUS_CODE: JsValue = JsValue::from_str("statusCode");
    static RETRY_AFTER: JsValue = JsValue::from_str("retryAfter");
}

/// The sends whose wait is still open, so that `close()` can end them at its deadline.
#[derive(Default)]
pub struct InFlight {
    next: Cell<u32>,
    open: RefCell<Vec<Open>>,
}

/// One open wait.
struct Open {
    id: u32,
    /// The flags ([`dispatch_flags`]) whose signal a cut-off aborts: the default
    /// dispatcher's request, or what a custom dispatcher passed it to.
    flags: JsValue,
    /// Ends the wait, resolving it with `marker`.
    resolve: Function,
    marker: JsValue,
}

impl InFlight {
    /// Aborts every request in flight and ends every open wait at once, clearing their
    /// timeout timers: nothing of theirs keeps Node alive. Their batches are left as
    /// they are (in flight, so counted as pending, and kept in storage for the next
    /// page in browsers); no outcome is reported for them.
    pub fn cut_all(&self) {
        // Taken out first: abort() and resolve() call into JS.
        let open = self.open.take();
        for o in open {
            abort_dispatch(&o.flags);
            let _ = o.resolve.call1(&JsValue::UNDEFINED, &o.marker);
        }
    }

    /// Registers a wait: its id and a promise that resolves with `marker` when
    /// [`InFlight::cut_all`] ends it.
    fn open(&self, flags: JsValue, marker: &JsValue) -> (u32, Promise) {
        let id = self.next.get().wrapping_add(1);
        self.next.set(id);
        let (cut, resolve) = promise_pair();
        if let Some(resolve) = resolve {
            self.open.borrow_mut().push(Open {
                id,
                flags,
                resolve,
                marker: marker.clone(),
            });
        }
        (id, cut)
    }

    fn close(&self, id: u32) {
        self.open.borrow_mut().retain(|o| o.id != id);
    }
}

/// Unregisters a wait however its future ends (settled, rejected, or dropped).
struct Registered<'a> {
    in_flight: &'a InFlight,
    id: u32,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.in_flight.close(self.id);
    }
}

/// How a bounded wait ended.
enum Waited {
    /// The promise resolved with this value.
    Value(JsValue),
    /// It rejected, or `timeout_ms` passed first.
    Failed,
    /// `close()` reached its deadline.
    Cut,
}

/// Awaits `promise` for at most `ms`, or until [`InFlight::cut_all`]; on timeout the
/// signal of `flags` ([`dispatch_flags`]) aborts. The timeout timer is cleared as soon
/// as the wait is over.
async fn within(promise: Promise, ms: u32, flags: JsValue, in_flight: &InFlight) -> Waited {
    let timed_out: JsValue = Object::new().into();
    let on_timeout = flags.clone();
    let (timeout, _timer) = deadline(ms, timed_out.clone(), move || abort_dispatch(&on_timeout));
    let cut_off: JsValue = Object::new().into();
    let (id, cut) = in_flight.open(flags, &cut_off);
    let _registered = Registered { in_flight, id };
    let race = Promise::race(&Array::of3(&promise, &timeout, &cut));
    // `_timer` and `_registered` live until the race is over; dropping them then clears
    // the timeout and unregisters the wait.
    match JsFuture::from(race).await {
        Ok(v) if v == timed_out => Waited::Failed,
        Ok(v) if v == cut_off => Waited::Cut,
        Ok(v) => Waited::Value(v),
        Err(_) => Waited::Failed,
    }
}

/// POSTs `body` to `url` with `Content-Type: application/json` (the global `fetch`),
/// aborting after `timeout_ms`. `None` when `close()` cut it off (nothing to report).
///
/// Redirects are not followed (`redirect: 'manual'`): `fetch` would turn a 301/302/303
/// into a GET without the body, and count the events delivered though no collector got
/// them. A 3xx, or the opaque redirect (status 0) browsers give instead, is a failure
/// the core gives up at once. A network error, an abort or a timeout is a network error.
pub async fn post(
    url: &str,
    body: &JsValue,
    timeout_ms: u32,
    in_flight: &InFlight,
) -> Option<Outcome> {
    let flags = dispatch_flags(false);
    let Ok(response) = global_fetch(url, &request_init(body, &flags)) else {
        return Some(Outcome::NETWORK_ERROR);
    };
    let answer = match within(answer(&response), timeout_ms, flags, in_flight).await {
        Waited::Value(v) => v,
        Waited::Failed => return Some(Outcome::NETWORK_ERROR),
        Waited::Cut => return None,
    };
    // `answer` gives `{ statusCode, retryAfter }`, statusCode a Response's status.
    let status = get(&answer, &STATUS_CODE).as_f64().unwrap_or_default();
    Some(status_outcome(&answer, status as u16))
}

/// `value[key]`, undefined when reading it throws.
fn get(value: &JsValue, key: &'static std::thread::LocalKey<JsValue>) -> JsValue {
    key.with(|k| Reflect::get(value, k))
        .unwrap_or(JsValue::UNDEFINED)
}

/// The outcome of `status`, with the wait `value.retryAfter` asks for: a number is
/// delay-seconds, a string a `Retry-After` header value.
fn status_outcome(value: &JsValue, status: u16) -> Outcome {
    let retry_after = get(value, &RETRY_AFTER);
    let wait = match retry_after.as_f64() {
        Some(secs) if secs.is_finite() && secs >= 0.0 => Some(secs * 1000.0),
        Some(_) => None,
        None => retry_after.as_string().as_deref().and_then(retry_after_ms),
    };
    with_retry_after(Outcome::status(status), wait)
}

fn with_retry_after(outcome: Outcome, wait_ms: Option<f64>) -> Outcome {
    match (outcome, wait_ms) {
        (Outcome::Failed { status, .. }, Some(ms)) => Outcome::Failed {
            status,
            retry_after_ms: Some(ms),
        },
        (o, _) => o,
    }
}

/// The wait a `Retry-After` value asks for, in ms from now (never negative; the core
/// bounds it): delay-seconds, or an HTTP date, which is wall-clock time, so it is
/// measured with `Date.parse` against `Date.now()`. `None` when it is neither.
fn retry_after_ms(value: &str) -> Option<f64> {
    let value = value.trim();
    let first = value.bytes().next()?;
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Integer parsing keeps float parsing out of the wasm; too many digits for a
        // u64 is "very long": the core caps it.
        return Some(
            value
                .parse::<u64>()
                .map_or(f64::INFINITY, |s| s as f64 * 1000.0),
        );
    }
    // Every HTTP-date form starts with a day name; `Date.parse` alone would take "-5"
    // or "2024" as dates.
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let at = js_sys::Date::parse(value);
    at.is_finite().then(|| (at - js_sys::Date::now()).max(0.0))
}

/// Calls a custom dispatcher and maps what it returns or resolves with, within
/// `timeout_ms`:
/// `{ statusCode, retryAfter? }` by status, `true`/`undefined`/an object without
/// `statusCode` as delivered, `false` as a retryable failure; a throw, a rejection or a
/// timeout is a network error. `None` when `close()` cut it off.
///
/// The second argument, `{ pageHidden, signal }`, tells the dispatcher whether the page
/// is going away (then it should use `navigator.sendBeacon` or
/// `fetch(..., { keepalive: true })`), and gives it an `AbortSignal` that aborts when
/// the send times out or `close()` reaches its deadline (pass it to `fetch`: then
/// nothing of the dispatcher's outlives either). The signal's AbortController is made
/// only when the dispatcher reads `signal`.
pub async fn call(
    dispatcher: &Function,
    log_event: &JsValue,
    page_hidden: bool,
    timeout_ms: u32,
    in_flight: &InFlight,
) -> Option<Outcome> {
    let flags = dispatch_flags(page_hidden);
    let value = match dispatcher.call2(&JsValue::UNDEFINED, log_event, &flags) {
        Ok(v) => v,
        Err(_) => return Some(Outcome::NETWORK_ERROR),
    };
    // A result given at once needs no timeout: no timer, no race (per batch, this is
    // most of the cost of a synchronous dispatcher).
    if !is_thenable(&value) {
        return Some(result_outcome(&value));
    }
    match within(Promise::resolve(&value), timeout_ms, flags, in_flight).await {
        Waited::Value(v) => Some(result_outcome(&v)),
        Waited::Failed => Some(Outcome::NETWORK_ERROR),
        Waited::Cut => None,
    }
}

fn result_outcome(value: &JsValue) -> Outcome {
    if let Some(ok) = value.as_bool() {
        return if ok {
            Outcome::Delivered
        } else {
            Outcome::NETWORK_ERROR
        };
    }
    if !value.is_object() {
        return Outcome::Delivered;
    }
    let status = get(value, &STATUS_CODE);
    if status.is_undefined() || status.is_null() {
        return Outcome::Delivered;
    }
    match status.as_f64() {
        Some(s) if s.fract() == 0.0 && (100.0..=599.0).contains(&s) => {
            status_outcome(value, s as u16)
        }
        _ => Outcome::NETWORK_ERROR,
    }
}
