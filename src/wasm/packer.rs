//! Moving a UserEvent into wasm: the glue's packer (`packInto` in js/packer.js) writes the
//! packed event (see `core::packed`) as UTF-8 bytes, with no JS string built, and
//! `copyPacked` copies them in one `set` into a scratch buffer owned here. The copy is
//! made after packing, so a getter on the event that re-enters the processor (and
//! grows wasm memory) cannot spoil it.
//!
//! Consecutive events nearly always share their context: the packer leaves out a
//! context whose values are those of the last event copied, and the packed context of
//! that event, kept here ([`LAST_CONTEXT`]), is put back in front. Both sides replace
//! that context only when an event with another one is copied, so an event refused or
//! thrown before the copy changes neither; what is put back is always the packing of
//! the event's own context values, whichever processor the last event went to.
//!
//! Owns: the scratch buffer in wasm memory, the last packed context, and the size check
//! before anything is copied. Must not: let an event that is refused for its size, or
//! one that cannot get the memory, grow wasm memory (which never shrinks) or trap.

use std::cell::{Cell, RefCell};

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
    fn copy_packed(at: *mut u8) -> u32;
    #[wasm_bindgen(js_name = takePackError)]
    fn take_pack_error() -> JsValue;
}

/// A buffer grown past this (by a huge event) is not kept for the next event.
const KEEP_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static MEMORY_GIVEN: Cell<bool> = const { Cell::new(false) };
    /// The packed context of the last event copied in with its context (the one the
    /// packer's `lastContext` holds the values of), without its last SEP.
    static LAST_CONTEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
    // n >= 0: n bytes; -2 - n: n bytes whose context was left out; -1: invalid.
    let (n, same) = match usize::try_from(n) {
        Ok(n) => (n, false),
        Err(_) => match usize::try_from(-2_i64 - i64::from(n)) {
            Ok(n) => (n, true),
            Err(_) => return Err(Error::Js(take_pack_error())),
        },
    };
    let prefix = if same {
        LAST_CONTEXT.with(|c| c.borrow().len() + 1)
    } else {
        0
    };
    let total = prefix + n;
    if total > max_bytes {
        return Err(Error::Core(core::Error::EventTooLarge {
            bytes: total,
            max: max_bytes,
        }));
    }
    // Taken out of its cell while in use, so that nothing else can touch it.
    let mut buf = SCRATCH.with(Cell::take);
    if buf.len() < total {
        // Out of memory is an error for this event, not a trap for the processor.
        if buf.try_reserve_exact(total - buf.len()).is_err() {
            return Err(Error::Js(
                js_sys::RangeError::new("not enough wasm memory left to take this event").into(),
            ));
        }
        buf.resize(total, 0);
    }
    if same {
        // The last context copied in put back in front, then its SEP.
        if let Some((sep, context)) = buf.get_mut(..prefix).and_then(|b| b.split_last_mut()) {
            // Same lengths (`prefix` was measured on it): a zip, no panic path.
            LAST_CONTEXT.with(|c| {
                for (to, from) in context.iter_mut().zip(c.borrow().iter()) {
                    *to = *from;
                }
            });
            *sep = core::packed::SEP as u8;
        }
        copy_packed(buf.as_mut_ptr().wrapping_add(prefix));
    } else {
        // The packer now leaves out this event's context when the next one has it too.
        let len = copy_packed(buf.as_mut_ptr()) as usize;
        LAST_CONTEXT.with(|c| {
            let mut c = c.borrow_mut();
            c.clear();
            c.extend_from_slice(buf.get(..len).unwrap_or_default());
        });
    }
    // The packer writes UTF-8 only (TextEncoder for anything but plain ASCII).
    let result = std::str::from_utf8(buf.get(..total).unwrap_or_default())
        .map(f)
        .map_err(|_| {
            Error::Js(js_sys::TypeError::new("event could not be packed as UTF-8").into())
        });
    if buf.len() <= KEEP_BYTES {
        SCRATCH.with(|s| s.set(buf));
    }
    result
}
