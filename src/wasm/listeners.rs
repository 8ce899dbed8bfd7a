//! A list of JS callbacks with ids, as behind `onEventDispatch` / `removeOnEventDispatch`.
//!
//! Owns: subscribing, unsubscribing and calling the callbacks. Must not: hold its
//! `RefCell` borrowed while a callback runs: a callback may subscribe, unsubscribe
//! (itself or another) or call the processor, and a second borrow would trap.

use std::cell::RefCell;

use js_sys::Function;
use wasm_bindgen::JsValue;

/// Subscribed callbacks, in subscription order.
#[derive(Default)]
pub struct Listeners {
    list: RefCell<List>,
}

#[derive(Default)]
struct List {
    next_id: u32,
    callbacks: Vec<(u32, Function)>,
}

impl Listeners {
    /// Subscribes `f` and returns its id (ids start at 1 and are never reused).
    pub fn add(&self, f: Function) -> u32 {
        let mut list = self.list.borrow_mut();
        list.next_id += 1;
        let id = list.next_id;
        list.callbacks.push((id, f));
        id
    }

    /// Unsubscribes `id`; `true` if it was subscribed.
    pub fn remove(&self, id: &JsValue) -> bool {
        let Some(id) = id.as_f64() else { return false };
        let mut list = self.list.borrow_mut();
        let before = list.callbacks.len();
        list.callbacks.retain(|(l, _)| f64::from(*l) != id);
        list.callbacks.len() != before
    }

    /// Calls every callback with `arg`; one that throws does not stop the others.
    ///
    /// As with DOM events: a callback subscribed while the others are being called is
    /// first called next time; one unsubscribed meanwhile is not called any more.
    pub fn notify(&self, arg: &JsValue) {
        let snapshot: Vec<(u32, Function)> = self.list.borrow().callbacks.clone();
        for (id, f) in snapshot {
            let subscribed = self.list.borrow().callbacks.iter().any(|(l, _)| *l == id);
            if subscribed {
                let _ = f.call1(&JsValue::UNDEFINED, arg);
            }
        }
    }
}
