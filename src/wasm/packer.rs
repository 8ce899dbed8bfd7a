//! Moving a UserEvent into wasm: the glue's packer (`packInto` in js/packer.js) writes the
//! packed event (see `core::packed`) as UTF-8 bytes, with no JS string built, and
//! `copyPacked` copies them in one `set` into a scratch buffer owned here. The copy is
//! made after packing, so a getter on the event that re-enters the processor (and
//! grows wasm memory) cannot spoil it.
//!
//! Owns: the scratch buffer in wasm memory and the size check before anything is
//! copied into it. Must not: let an event that is refused for its size, or one that
//! cannot get the memory, grow wasm memory (which never shrinks) or trap.

use std::cell::Cell;

use wasm_bindgen::prelude::*;

use super::error::Error;
use crate::core;

#[wasm_bindgen(module = "/src/wasm/js/packer.js")]
extern "C" {
    #[wasm_bindgen(js_name = useMemory)]
    fn use_memory(memory: &JsValue);
    #[wasm_bindgen(js_name = packInto)]
    fn pack_into(event: &JsValue) -> i32;
    #[wasm_bindgen(js_name = copyPacked)]
    fn copy_packed(at: *mut u8);
    #[wasm_bindgen(js_name = takePackError)]
    fn take_pack_error() -> JsValue;
}

/// A buffer grown past this (by a huge event) is not kept for the next event.
const KEEP_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static MEMORY_GIVEN: Cell<bool> = const { Cell::new(false) };
}

/// Packs `event` and calls `f` with the packed text.
///
/// An event whose packed bytes alone exceed `max_bytes` (the `maxPayloadBytes` a batch
/// of one must fit in, and its JSON is longer than its packed form) is refused here,
/// before it is copied into wasm memory: a 50 MiB `user.id` costs JS memory only, for
/// as long as the packer keeps it.
pub fn with_packed<T>(
    event: &JsValue,
    max_bytes: usize,
    f: impl FnOnce(&str) -> T,
) -> Result<T, Error> {
    if !MEMORY_GIVEN.with(|given| given.replace(true)) {
        use_memory(&wasm_bindgen::memory());
    }
    let n = pack_into(event);
    let Ok(n) = usize::try_from(n) else {
        return Err(Error::Js(take_pack_error()));
    };
    if n > max_bytes {
        return Err(Error::Core(core::Error::EventTooLarge {
            bytes: n,
            max: max_bytes,
        }));
    }
    // Taken out of its cell while in use, so that nothing else can touch it.
    let mut buf = SCRATCH.with(Cell::take);
    if buf.len() < n {
        // Out of memory is an error for this event, not a trap for the processor.
        if buf.try_reserve_exact(n - buf.len()).is_err() {
            return Err(Error::Js(
                js_sys::RangeError::new("not enough wasm memory left to take this event").into(),
            ));
        }
        buf.resize(n, 0);
    }
    copy_packed(buf.as_mut_ptr());
    // The packer writes UTF-8 only (TextEncoder for anything but plain ASCII).
    let result = std::str::from_utf8(buf.get(..n).unwrap_or_default())
        .map(f)
        .map_err(|_| {
            Error::Js(js_sys::TypeError::new("event could not be packed as UTF-8").into())
        });
    if buf.len() <= KEEP_BYTES {
        SCRATCH.with(|s| s.set(buf));
    }
    result
}
