//! Sending one batch: the default dispatcher (a POST through the global `fetch`) or the
//! user's dispatcher, and how each result maps to an [`Outcome`].

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, Response};

use crate::core::Outcome;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (browsers, Node 18+, workerd): never `window.fetch`.
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Result<Promise, JsValue>;
}

/// Maps an HTTP status to an outcome: 2xx is success.
pub fn status_outcome(status: u16) -> Outcome {
    if (200..300).contains(&status) {
        Outcome::Delivered
    } else {
        Outcome::Failed {
            status: Some(status),
        }
    }
}

/// POSTs `body` to `url` with `Content-Type: application/json`.
pub async fn post(url: &str, body: &str) -> Outcome {
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
    init.set_body(&JsValue::from_str(body));
    let Ok(promise) = global_fetch(url, &init) else {
        return Outcome::Failed { status: None };
    };
    match JsFuture::from(promise).await {
        Ok(response) => match response.dyn_into::<Response>() {
            Ok(r) => status_outcome(r.status()),
            Err(_) => Outcome::Failed { status: None },
        },
        Err(_) => Outcome::Failed { status: None },
    }
}

/// Calls a custom dispatcher and maps what it returns (or resolves with):
/// `{ statusCode }` by status, `true`/`undefined`/an object without `statusCode` as
/// success, `false` as failure; a throw or rejection is a failure with no status.
pub async fn call(dispatcher: &Function, log_event: &JsValue) -> Outcome {
    let value = match dispatcher.call1(&JsValue::UNDEFINED, log_event) {
        Ok(v) => v,
        Err(_) => return Outcome::Failed { status: None },
    };
    let value = match JsFuture::from(Promise::resolve(&value)).await {
        Ok(v) => v,
        Err(_) => return Outcome::Failed { status: None },
    };
    result_outcome(&value)
}

fn result_outcome(value: &JsValue) -> Outcome {
    if let Some(ok) = value.as_bool() {
        return if ok {
            Outcome::Delivered
        } else {
            Outcome::Failed { status: None }
        };
    }
    if value.is_object() {
        let status = Reflect::get(value, &JsValue::from_str("statusCode"))
            .ok()
            .and_then(|s| s.as_f64());
        return match status {
            Some(s) if s.fract() == 0.0 && (0.0..=999.0).contains(&s) => status_outcome(s as u16),
            Some(_) => Outcome::Failed { status: None },
            None => Outcome::Delivered,
        };
    }
    Outcome::Delivered
}
