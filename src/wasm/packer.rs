//! Moving a UserEvent into wasm: the glue's packer (`packInto` in glue.js) writes the
//! packed event (see `core::packed`) as UTF-8 straight into a scratch buffer in wasm
//! memory, so an event crosses the boundary in one call, with no JS string built and
//! no copy on either side.

use std::cell::Cell;

use wasm_bindgen::prelude::*;

use super::error::Error;

#[wasm_bindgen(module = "/src/wasm/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = useMemory)]
    fn use_memory(memory: &JsValue);
    #[wasm_bindgen(js_name = packInto)]
    fn pack_into(event: &JsValue, at: *mut u8, room: usize) -> i32;
    #[wasm_bindgen(js_name = takePackError)]
    fn take_pack_error() -> JsValue;
}

/// Room of a new scratch buffer: a typical event packs into ~300 bytes.
const START_BYTES: usize = 4 * 1024;
/// A buffer grown past this (by a huge event) is not kept for the next event.
const KEEP_BYTES: usize = 64 * 1024;
/// No packed event may be larger (it would be far over `maxPayloadBytes` anyway).
const MAX_BYTES: usize = 1 << 30;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static MEMORY_GIVEN: Cell<bool> = const { Cell::new(false) };
}

/// Packs `event` and calls `f` with the packed text.
pub fn with_packed<T>(event: &JsValue, f: impl FnOnce(&str) -> T) -> Result<T, Error> {
    if !MEMORY_GIVEN.with(|given| given.replace(true)) {
        use_memory(&wasm_bindgen::memory());
    }
    // Taken out of its cell: a getter on the event that re-enters the processor packs
    // into a buffer of its own.
    let mut buf = SCRATCH.with(Cell::take);
    if buf.len() < START_BYTES {
        buf.resize(START_BYTES, 0);
    }
    let packed = loop {
        match pack_into(event, buf.as_mut_ptr(), buf.len()) {
            n if n >= 0 => break Ok(n as usize),
            -1 if buf.len() < MAX_BYTES => buf.resize(buf.len() * 2, 0),
            -1 => {
                break Err(Error::Core(crate::core::Error::InvalidEvent {
                    field: "event".to_string(),
                    rule: "smaller than 1 GiB when serialized",
                    got: "a larger event".to_string(),
                }))
            }
            _ => break Err(Error::Js(take_pack_error())),
        }
    };
    let result = packed.and_then(|n| {
        // The packer writes UTF-8 only (TextEncoder for anything but plain ASCII).
        std::str::from_utf8(&buf[..n]).map(f).map_err(|_| {
            Error::Js(js_sys::TypeError::new("event could not be packed as UTF-8").into())
        })
    });
    if buf.len() <= KEEP_BYTES {
        SCRATCH.with(|s| s.set(buf));
    }
    result
}
