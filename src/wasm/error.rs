//! The one error type of the wasm layer.

use wasm_bindgen::JsValue;

use crate::core;

/// Anything the JS API can throw.
#[derive(Debug)]
pub enum Error {
    /// Refused by the core: an invalid or oversized event, or a closed processor.
    Core(core::Error),
    /// An exception thrown by JS code we called (e.g. the event packer).
    Js(JsValue),
}

impl From<core::Error> for Error {
    fn from(e: core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        match e {
            // `message()`, not `to_string()`: no `core::fmt` in the wasm.
            Error::Core(e) if e.is_input_error() => js_sys::TypeError::new(&e.message()).into(),
            Error::Core(e) => js_sys::Error::new(&e.message()).into(),
            Error::Js(v) => v,
        }
    }
}
