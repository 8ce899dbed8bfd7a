//! The Optimizely SDK adapter: `processLogEvent` re-batches a LogEvent an SDK already
//! formatted (unbatched into packed events by the glue's `unbatch`), and
//! `asEventDispatcher` wraps it as an SDK `EventDispatcher`.
//!
//! Owns: turning SDK LogEvents into queued events, and the errors that name their
//! fields as the caller wrote them. Must not: send anything itself (the pump does) or
//! accept part of a LogEvent (all or none).

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::api::BatchEventProcessor;
use super::error::Error;
use super::pump::now;
use crate::core;

#[wasm_bindgen(module = "/src/wasm/js/sdk-adapter.js")]
extern "C" {
    /// The packed events of an SDK LogEvent (`{ url, params }`), or the `TypeError`
    /// naming its first invalid field.
    #[wasm_bindgen(catch)]
    pub(super) fn unbatch(log_event: &JsValue) -> Result<Vec<String>, JsValue>;
    #[wasm_bindgen(js_name = wireField)]
    fn wire_field(index: u32, field: &str) -> String;
    /// A promise rejected with `error` that counts as handled (see `asEventDispatcher`).
    fn refused(error: &JsValue) -> Promise;
}

/// `events[3].user.id` -> `(Some(3), "user.id")`.
fn split_event_field(field: &str) -> (Option<u32>, &str) {
    // `split_once(']')`, not `split_once("].")`: a `char` needs no substring search
    // (whose bounds checks pull panic paths into the wasm).
    field
        .strip_prefix("events[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, name)| Some((i.parse().ok()?, name.strip_prefix('.')?)))
        .map_or((None, field), |(i, name)| (Some(i), name))
}

fn status_200() -> JsValue {
    let o = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&o, &JsValue::from_str("statusCode"), &JsValue::from(200));
    o.into()
}

#[wasm_bindgen]
impl BatchEventProcessor {
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
    /// invalid or the processor is closed. The rejection counts as handled: SDK 6's
    /// forwarding processor returns it to a caller that never awaits it, and an
    /// unhandled rejection would end a Node process; whoever awaits it still sees it.
    #[wasm_bindgen(js_name = asEventDispatcher, unchecked_return_type = "{ dispatchEvent(logEvent: { url: string; httpVerb?: string; params: EventBatch }): Promise<{ statusCode: number }> }")]
    pub fn as_event_dispatcher(&self) -> JsValue {
        let this = BatchEventProcessor {
            inner: Rc::clone(&self.inner),
        };
        let dispatch = Closure::<dyn Fn(JsValue) -> Promise>::new(move |log_event: JsValue| {
            match this.process_log_event(log_event) {
                Ok(true) => Promise::resolve(&status_200()),
                Ok(false) => refused(
                    &js_sys::Error::new(
                        "batch-event-processor queue is full (maxQueueSize): the events were not accepted",
                    )
                    .into(),
                ),
                Err(e) => refused(&e),
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
}
