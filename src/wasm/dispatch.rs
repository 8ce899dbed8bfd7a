//! Sending one batch: the default dispatcher (a POST through the global `fetch`) or the
//! user's dispatcher, under a timeout, and how each result maps to an [`Outcome`].

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, RequestInit, Response};

use super::api::show;
use super::timer::deadline;
use crate::core::Outcome;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (browsers, Node 18+, workerd): never `window.fetch`.
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Result<Promise, JsValue>;
}

/// Awaits `promise` for at most `ms`: `Ok(Some(value))`, `Ok(None)` on timeout,
/// `Err` if it rejected.
async fn within(
    promise: Promise,
    ms: u32,
    on_expiry: impl FnOnce() + 'static,
) -> Result<Option<JsValue>, JsValue> {
    let marker: JsValue = Object::new().into();
    let (timeout, _timer) = deadline(ms, marker.clone(), on_expiry);
    // `_timer` lives until the race is over; dropping it then clears the timeout.
    let race = Promise::race(&js_sys::Array::of2(&promise, &timeout));
    let value = JsFuture::from(race).await?;
    Ok((value != marker).then_some(value))
}

/// POSTs `body` to `url` with `Content-Type: application/json`, aborting after
/// `timeout_ms`.
pub async fn post(url: &str, body: &JsValue, timeout_ms: u32, now_ms: f64) -> Outcome {
    let headers = Object::new();
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(
        &headers,
        &JsValue::from_str("Content-Type"),
        &JsValue::from_str("application/json"),
    );
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(body);
    let controller = AbortController::new().ok();
    if let Some(c) = &controller {
        init.set_signal(Some(&c.signal()));
    }
    let Ok(promise) = global_fetch(url, &init) else {
        return Outcome::NETWORK_ERROR;
    };
    let abort = move || {
        if let Some(c) = controller {
            c.abort();
        }
    };
    match within(promise, timeout_ms, abort).await {
        Ok(Some(response)) => match response.dyn_into::<Response>() {
            Ok(r) => {
                let retry_after = r.headers().get("retry-after").ok().flatten();
                with_retry_after(Outcome::status(r.status()), retry_after.as_deref(), now_ms)
            }
            Err(_) => Outcome::NETWORK_ERROR,
        },
        Ok(None) | Err(_) => Outcome::NETWORK_ERROR,
    }
}

/// The wait a `Retry-After` value asks for, in ms from now: delay-seconds, or an HTTP
/// date, parsed by JS (`Date.parse(v) - Date.now()`: a date is wall-clock time, and
/// parsing dates in Rust cost ~4.5 KB gzip). `None` when malformed. The core caps it,
/// keeps it at least as long as the backoff, and counts it as a retry.
fn retry_after_ms(value: &str) -> Option<f64> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is "very long": the core caps it.
        return Some(
            v.parse::<u64>()
                .map_or(f64::INFINITY, |s| s as f64 * 1000.0),
        );
    }
    let at = js_sys::Date::parse(v);
    at.is_finite().then(|| at - js_sys::Date::now())
}

fn with_retry_after(outcome: Outcome, header: Option<&str>, _now_ms: f64) -> Outcome {
    match (outcome, header) {
        (Outcome::Failed { status, .. }, Some(h)) => Outcome::Failed {
            status,
            retry_after_ms: retry_after_ms(h),
        },
        (o, _) => o,
    }
}

/// Calls a custom dispatcher and maps what it returns or resolves with, within
/// `timeout_ms`:
/// `{ statusCode, retryAfter? }` by status, `true`/`undefined`/an object without
/// `statusCode` as delivered, `false` as a retryable failure; a throw, a rejection or a
/// timeout is a network error.
///
/// The second argument, `{ pageHidden }`, tells the dispatcher whether the page is going
/// away (then it should use `navigator.sendBeacon` or `fetch(..., { keepalive: true })`).
pub async fn call(
    dispatcher: &Function,
    log_event: &JsValue,
    page_hidden: bool,
    timeout_ms: u32,
    now_ms: f64,
) -> Outcome {
    let flags = Object::new();
    let _ = Reflect::set(
        &flags,
        &JsValue::from_str("pageHidden"),
        &JsValue::from_bool(page_hidden),
    );
    let value = match dispatcher.call2(&JsValue::UNDEFINED, log_event, &flags) {
        Ok(v) => v,
        Err(_) => return Outcome::NETWORK_ERROR,
    };
    // A result given at once needs no timeout: no timer, no race (per batch, this is
    // most of the cost of a synchronous dispatcher).
    if !is_thenable(&value) {
        return result_outcome(&value, now_ms);
    }
    match within(Promise::resolve(&value), timeout_ms, || ()).await {
        Ok(Some(v)) => result_outcome(&v, now_ms),
        Ok(None) | Err(_) => Outcome::NETWORK_ERROR,
    }
}

/// `true` for a promise or any object with a `then` method (what `await` waits on).
fn is_thenable(value: &JsValue) -> bool {
    value.is_instance_of::<Promise>()
        || (value.is_object()
            && Reflect::get(value, &JsValue::from_str("then")).is_ok_and(|then| then.is_function()))
}

fn result_outcome(value: &JsValue, now_ms: f64) -> Outcome {
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
    let get = |k: &str| Reflect::get(value, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let status = get("statusCode");
    if status.is_undefined() || status.is_null() {
        return Outcome::Delivered;
    }
    match status.as_f64() {
        Some(s) if s.fract() == 0.0 && (100.0..=599.0).contains(&s) => {
            let retry_after = get("retryAfter");
            let header = match retry_after.as_f64() {
                Some(_) => Some(show(&retry_after)),
                None => retry_after.as_string(),
            };
            with_retry_after(Outcome::status(s as u16), header.as_deref(), now_ms)
        }
        _ => Outcome::NETWORK_ERROR,
    }
}
