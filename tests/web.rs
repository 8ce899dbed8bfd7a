//! The wasm layer in a real JS engine: run in Node (`cargo test --target
//! wasm32-unknown-unknown`) and in headless Chromium (`WASM_BINDGEN_USE_BROWSER=1`).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use batch_event_processor::wasm::api::BatchEventProcessor;
use js_sys::{Function, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

fn js(json: &str) -> JsValue {
    JSON::parse(json).unwrap()
}

fn event(uuid: &str, region: &str) -> JsValue {
    js(&format!(
        r#"{{"type":"impression","uuid":"{uuid}","timestamp":1700000000000,
            "context":{{"accountId":"a","projectId":"p","revision":"1","region":"{region}",
                        "clientName":"node-sdk","clientVersion":"6.0.0","anonymizeIP":true}},
            "user":{{"id":"visitor","attributes":[{{"entityId":"1","key":"plan","value":"pro"}}]}},
            "layer":{{"id":"10"}},"experiment":{{"id":"11","key":"exp"}},
            "variation":{{"id":"12","key":"on"}},"ruleKey":"exp","flagKey":"flag",
            "ruleType":"feature-test","enabled":true}}"#
    ))
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap()
}

/// A dispatcher that records the LogEvents it gets and answers with `answer`.
fn recorder(answer: JsValue) -> (Function, Rc<RefCell<Vec<JsValue>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&seen);
    let f = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |e: JsValue| {
        log.borrow_mut().push(e);
        answer.clone()
    });
    (f.into_js_value().unchecked_into(), seen)
}

fn options(batch_size: u32, dispatcher: &Function) -> JsValue {
    let o = js(&format!(
        r#"{{"batchSize":{batch_size},"flushInterval":60000,"retry":false}}"#
    ));
    Reflect::set(&o, &"dispatcher".into(), dispatcher).unwrap();
    o
}

fn stat(p: &BatchEventProcessor, key: &str) -> f64 {
    get(&p.stats(), key).as_f64().unwrap()
}

#[wasm_bindgen_test]
async fn batches_reach_the_dispatcher_and_the_listeners() {
    let (dispatcher, seen) = recorder(js(r#"{"statusCode":200}"#));
    let p = BatchEventProcessor::new(options(2, &dispatcher)).unwrap();
    let (listener, heard) = recorder(JsValue::UNDEFINED);
    let id = p.on_event_dispatch(listener.into()).unwrap();
    assert!(p.process(event("u1", "US")).unwrap());
    assert!(p.process(event("u2", "US")).unwrap());
    JsFuture::from(p.flush()).await.unwrap();
    assert_eq!(seen.borrow().len(), 1);
    assert_eq!(heard.borrow().len(), 1);
    let log_event = seen.borrow()[0].clone();
    let log_event = &log_event;
    assert_eq!(
        get(log_event, "url"),
        "https://logx.optimizely.com/v1/events"
    );
    assert_eq!(get(log_event, "httpVerb"), "POST");
    let params = get(log_event, "params");
    assert_eq!(get(&params, "account_id"), "a");
    let body = get(log_event, "body").as_string().unwrap();
    assert_eq!(JSON::stringify(&params).unwrap(), body.as_str());
    assert_eq!(stat(&p, "dispatched"), 2.0);
    assert_eq!(stat(&p, "batches"), 1.0);
    assert_eq!(stat(&p, "bytesSent"), body.len() as f64);

    assert!(p.remove_on_event_dispatch(JsValue::from(id)));
    assert!(!p.remove_on_event_dispatch(JsValue::from(id)));
    p.process(event("u3", "EU")).unwrap();
    JsFuture::from(p.close(None).unwrap()).await.unwrap();
    assert_eq!(heard.borrow().len(), 1, "a removed listener is not called");
    assert_eq!(seen.borrow().len(), 2);
    assert_eq!(
        get(&seen.borrow()[1], "url"),
        "https://eu.logx.optimizely.com/v1/events"
    );
}

#[wasm_bindgen_test]
async fn dispatcher_results_map_to_delivered_and_failed() {
    for (answer, delivered) in [
        (js(r#"{"statusCode":204}"#), true),
        (JsValue::TRUE, true),
        (JsValue::UNDEFINED, true),
        (js(r#"{"statusCode":500}"#), false),
        (JsValue::FALSE, false),
    ] {
        let (dispatcher, _) = recorder(answer);
        let p = BatchEventProcessor::new(options(1, &dispatcher)).unwrap();
        p.process(event("u", "US")).unwrap();
        JsFuture::from(p.flush()).await.unwrap();
        assert_eq!(stat(&p, "dispatched"), if delivered { 1.0 } else { 0.0 });
        assert_eq!(stat(&p, "failed"), if delivered { 0.0 } else { 1.0 });
        assert_eq!(stat(&p, "inFlight"), 0.0);
    }
}

#[wasm_bindgen_test]
async fn a_throwing_dispatcher_or_listener_does_not_break_the_processor() {
    let throwing: Function = Function::new_with_args("e", "throw new Error('boom')");
    let p = BatchEventProcessor::new(options(1, &throwing)).unwrap();
    p.on_event_dispatch(throwing.clone().into()).unwrap();
    let (listener, heard) = recorder(JsValue::UNDEFINED);
    p.on_event_dispatch(listener.into()).unwrap();
    p.process(event("u", "US")).unwrap();
    JsFuture::from(p.flush()).await.unwrap();
    assert_eq!(heard.borrow().len(), 1);
    assert_eq!(stat(&p, "failed"), 1.0);
    assert!(p.process(event("v", "US")).unwrap());
}

#[wasm_bindgen_test]
fn bad_options_throw_a_type_error_naming_the_option() {
    for (opts, message) in [
        (
            r#"{"batchSize":0}"#,
            "batchSize must be an integer >= 1, got 0",
        ),
        (
            r#"{"batchSize":1.5}"#,
            "batchSize must be an integer >= 1, got 1.5",
        ),
        (
            r#"{"flushInterval":-1}"#,
            "flushInterval must be a finite number > 0 (ms), got -1",
        ),
        (
            r#"{"maxQueueSize":"10"}"#,
            "maxQueueSize must be an integer >= 1, got \"10\"",
        ),
        (
            r#"{"endpoint":"ftp://x"}"#,
            "endpoint must be an http:// or https:// URL, got \"ftp://x\"",
        ),
        (
            r#"{"dispatcher":1}"#,
            "dispatcher must be a function, got 1",
        ),
        ("[]", "options must be an object, got an array"),
    ] {
        let err = BatchEventProcessor::new(js(opts)).err().expect(opts);
        assert!(err.is_instance_of::<js_sys::TypeError>(), "{opts}");
        assert_eq!(get(&err, "message"), message);
    }
}

#[wasm_bindgen_test]
fn bad_events_throw_a_type_error_naming_the_field_and_keep_the_queue() {
    let p = BatchEventProcessor::new(JsValue::UNDEFINED).unwrap();
    p.process(event("ok", "US")).unwrap();
    let missing_user = js(r#"{"type":"impression","context":{"accountId":"a","projectId":"p"}}"#);
    let err = p.process(missing_user).unwrap_err();
    assert!(err.is_instance_of::<js_sys::TypeError>());
    assert_eq!(
        get(&err, "message"),
        "user must be an object, got undefined"
    );
    let wrong_type = event("x", "US");
    Reflect::set(&wrong_type, &"type".into(), &"click".into()).unwrap();
    let err = p.process(wrong_type).unwrap_err();
    assert!(get(&err, "message")
        .as_string()
        .unwrap()
        .starts_with("type must be 'impression' or 'conversion'"));
    let nan = event("y", "US");
    Reflect::set(&nan, &"timestamp".into(), &JsValue::from(f64::NAN)).unwrap();
    let err = p.process(nan).unwrap_err();
    assert_eq!(
        get(&err, "message"),
        "timestamp must be a finite number, got NaN"
    );
    assert_eq!(stat(&p, "queued"), 1.0);
}

#[wasm_bindgen_test]
async fn process_after_close_throws() {
    let p = BatchEventProcessor::new(JsValue::UNDEFINED).unwrap();
    let first = p.close(None).unwrap();
    let second = p.close(None).unwrap();
    assert!(JsValue::from(first.clone()) == JsValue::from(second));
    JsFuture::from(first).await.unwrap();
    let err = p.process(event("late", "US")).unwrap_err();
    assert!(!err.is_instance_of::<js_sys::TypeError>());
    assert!(get(&err, "message").as_string().unwrap().contains("closed"));
}

/// The defaults live in src/wasm/js/options.js; the core's `Config::default()` states
/// the same ones for native users: they must agree.
#[wasm_bindgen_test]
fn option_defaults_match_the_core() {
    use batch_event_processor::core::Config;
    use batch_event_processor::wasm::options::Options;
    let parsed = Options::parse(&JsValue::UNDEFINED).unwrap().config;
    let expected = Config {
        jitter_seed: parsed.jitter_seed,
        in_flight_limit_ms: parsed.in_flight_limit_ms,
        ..Config::default()
    };
    assert_eq!(parsed, expected);
}
