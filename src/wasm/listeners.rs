//! A list of JS callbacks with ids, as behind `onEventDispatch` / `removeOnEventDispatch`.

use js_sys::Function;
use wasm_bindgen::JsValue;

/// Subscribed callbacks, in subscription order.
#[derive(Default)]
pub struct Listeners {
    next_id: u32,
    list: Vec<(u32, Function)>,
}

impl Listeners {
    /// Subscribes `f` and returns its id (ids start at 1 and are never reused).
    pub fn add(&mut self, f: Function) -> u32 {
        self.next_id += 1;
        self.list.push((self.next_id, f));
        self.next_id
    }

    /// Unsubscribes `id`; `true` if it was subscribed.
    pub fn remove(&mut self, id: &JsValue) -> bool {
        let Some(id) = id.as_f64() else { return false };
        let before = self.list.len();
        self.list.retain(|(l, _)| f64::from(*l) != id);
        self.list.len() != before
    }

    /// A snapshot of the callbacks, so that a callback may (un)subscribe while called.
    pub fn snapshot(&self) -> Vec<Function> {
        self.list.iter().map(|(_, f)| f.clone()).collect()
    }
}

/// Calls every callback with `arg`; one that throws does not stop the others.
pub fn notify(callbacks: Vec<Function>, arg: &JsValue) {
    for f in callbacks {
        let _ = f.call1(&JsValue::UNDEFINED, arg);
    }
}
