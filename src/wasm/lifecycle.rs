//! The browser lifecycle of a processor: the page being hidden or left (send what is
//! queued in beacon-sized bodies), `online` / `offline`, persisting unconfirmed batches
//! to storage, keeping the tab's alive mark while it holds them (left only when the page
//! is left, never when merely hidden) and recovering those a closed page left behind.
//!
//! Owns: the glue's page, network and storage bindings and what the processor does on
//! those events. Must not: run in Node or Workers beyond the glue's no-op answers
//! (nothing to watch, always online, no store); hold a borrow of the core while it
//! calls the store, a beacon or a listener.

use std::rc::Rc;

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::pump::{make_log_event, now, Inner};
use super::sdk::unbatch;
use crate::core::set::U64Set;
use crate::core::Outcome;

#[wasm_bindgen(module = "/src/wasm/js/page.js")]
extern "C" {
    #[wasm_bindgen(js_name = watchPage)]
    pub(super) fn watch_page(on_change: &Function) -> JsValue;
    #[wasm_bindgen(js_name = sendBeacon)]
    fn send_beacon(url: &str, body: &Uint8Array) -> bool;
    pub(super) fn keepalive(url: &str, body: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = isOffline)]
    pub(super) fn is_offline() -> bool;
    #[wasm_bindgen(js_name = watchOnline)]
    pub(super) fn watch_online(on_online: &Function) -> JsValue;
}

#[wasm_bindgen(module = "/src/wasm/js/storage.js")]
extern "C" {
    /// Unconfirmed batches kept across reloads (js/storage.js).
    pub(super) type BatchStore;
    #[wasm_bindgen(static_method_of = BatchStore, catch)]
    pub(super) fn open(
        option: &JsValue,
        max_bytes: f64,
        ttl_ms: f64,
    ) -> Result<Option<BatchStore>, JsValue>;
    #[wasm_bindgen(method)]
    fn save(this: &BatchStore, id: f64, url: &str, body: &str) -> bool;
    #[wasm_bindgen(method)]
    fn remove(this: &BatchStore, id: f64);
    #[wasm_bindgen(method)]
    fn recover(this: &BatchStore, take: &Function, stale_ms: f64) -> Promise;
    #[wasm_bindgen(method)]
    fn beat(this: &BatchStore);
    #[wasm_bindgen(method, js_name = keepAlive)]
    fn keep_alive(this: &BatchStore, ahead_ms: f64, stale_ms: f64);
    #[wasm_bindgen(method)]
    fn back(this: &BatchStore);
    #[wasm_bindgen(method)]
    pub(super) fn leave(this: &BatchStore);
    #[wasm_bindgen(method, getter)]
    pub(super) fn errors(this: &BatchStore) -> f64;
}

/// A page whose alive mark is older than this is gone: its batches may be recovered.
const STALE_TAB_MS: f64 = 30_000.0;

/// Longest wait announced to other tabs in the alive mark (a `Retry-After` wait is
/// capped at 5 minutes too): a tab that crashed meanwhile is recovered this late.
const MAX_AHEAD_MS: f64 = 300_000.0;

/// Largest body sent while the page goes away: beacons and keepalive requests are
/// capped at 64 KiB.
const UNLOAD_BODY_BYTES: usize = 64_000;

impl Inner {
    /// A page event from the glue's `watchPage`: `"hidden"`, `"left"` or `"shown"`.
    pub(super) fn on_page_event(self: &Rc<Self>, what: &JsValue) {
        match what.as_string().as_deref() {
            Some("shown") => {
                // Back from the back/forward cache (or visible again): alive again.
                if let Some(store) = self.store.as_ref().filter(|_| !self.stopped.get()) {
                    store.back();
                }
            }
            Some("left") => self.on_page_hide(true),
            _ => self.on_page_hide(false),
        }
    }

    /// The page is being hidden or, when `left`, left: send everything now, in bodies
    /// a beacon takes. The processor goes on working if the page stays or comes back.
    /// Only a page being left gives up its alive mark, so that another tab may recover
    /// what it stored: a hidden tab still holds and retries its batches, and another
    /// tab taking them too would send their events twice.
    pub(super) fn on_page_hide(self: &Rc<Self>, left: bool) {
        let store = self.store.as_ref().filter(|_| left);
        if is_offline() {
            // Nothing can go now: keep everything for the next page (or for `online`).
            self.core.borrow_mut().flush();
            self.persist();
            if let Some(store) = store {
                store.leave();
            }
            return;
        }
        let batches = self.core.borrow_mut().drain_for_unload(UNLOAD_BODY_BYTES);
        let mut rest = Vec::new();
        for batch in batches {
            // Without a custom dispatcher, a beacon first. One the browser took counts
            // as delivered right away, before the store is updated: the next page must
            // not recover it too.
            let beaconed = match self.dispatcher {
                Some(_) => None,
                None => self.body_bytes(batch.id),
            }
            .filter(|body| send_beacon(&batch.url, body));
            if let Some(body) = beaconed {
                if batch.first_attempt {
                    let log_event = make_log_event(&batch.url, &body);
                    self.dispatch_listeners.notify(&log_event);
                }
                self.core
                    .borrow_mut()
                    .on_dispatch_result(batch.id, Outcome::Delivered, now());
            } else {
                rest.push(batch);
            }
        }
        // What is left is stored before it is sent, and old batches are forgotten.
        self.persist();
        if let Some(store) = store {
            store.leave();
        }
        for batch in rest {
            self.send(batch, true);
        }
        self.pump();
    }

    /// Subscribes `on_event` through a glue `watch*` function whose remover is kept
    /// for `close()`; nothing happens where the glue finds nothing to watch.
    /// `on_event` gets the callback's first argument (undefined if none).
    pub(super) fn watch(
        self: &Rc<Self>,
        subscribe: fn(&Function) -> JsValue,
        on_event: fn(&Rc<Inner>, JsValue),
    ) {
        let weak = Rc::downgrade(self);
        let callback = Closure::<dyn Fn(JsValue)>::new(move |arg: JsValue| {
            if let Some(inner) = weak.upgrade() {
                on_event(&inner, arg);
            }
        });
        if let Ok(unwatch) = subscribe(callback.as_ref().unchecked_ref()).dyn_into::<Function>() {
            // The closure lives as long as the listener (until close()).
            callback.forget();
            self.unwatch.borrow_mut().push(unwatch);
        }
    }

    /// Mirrors the core's unsettled batches into the store: new ones are written
    /// (before they are sent), settled or replaced ones removed; and keeps the tab's
    /// alive mark fresh while it holds some.
    pub(super) fn persist(&self) {
        let Some(store) = &self.store else { return };
        self.mirror(store);
        // Runs on every pump: one clock read and a comparison in the glue, which
        // writes the mark only when it would go stale before the next wake-up.
        if !self.stored.borrow().is_empty() {
            let next = self.core.borrow().poll_timeout();
            let ahead = match next {
                Some(t) => t - now(),
                // Only sends in flight (or offline): the next pump comes when one
                // settles, by its dispatch timeout (plus the core's stale check).
                None => f64::from(self.dispatch_timeout_ms) + 5_000.0,
            };
            store.keep_alive(ahead.clamp(0.0, MAX_AHEAD_MS), STALE_TAB_MS);
        }
    }

    fn mirror(&self, store: &BatchStore) {
        // Runs on every pump: nothing to compare while no batch came or went.
        let version = self.core.borrow().batches_version();
        if self.stored_version.replace(Some(version)) == Some(version) {
            return;
        }
        let current = self.core.borrow().unsettled_ids();
        let current_set: U64Set = current.iter().copied().collect();
        // Taken out of its cell while the store (a Storage-like object of the page's,
        // possibly user code) is called: no borrow lives across those calls. A
        // re-entrant persist sees nothing stored and saves again, which is idempotent.
        let mut stored = self.stored.take();
        let stored_before: U64Set = stored.iter().copied().collect();
        stored.retain(|id| {
            let keep = current_set.contains(*id);
            if !keep {
                store.remove(*id as f64);
            }
            keep
        });
        let mut changed = false;
        for id in current {
            if stored_before.contains(id) {
                continue;
            }
            let entry = {
                let core = self.core.borrow();
                core.url(id).map(String::from).zip(core.body(id))
            };
            if let Some((url, body)) = entry {
                // A batch that does not fit the storage cap stays in memory only.
                store.save(id as f64, &url, &body);
                stored.push(id);
                changed = true;
            }
        }
        let reentered = self.stored.replace(Vec::new());
        if !reentered.is_empty() {
            // Keep what a re-entrant persist saved, and compare again next time.
            stored.extend(reentered);
            let mut seen = U64Set::default();
            stored.retain(|id| seen.insert(*id));
            self.stored_version.set(None);
        }
        self.stored.replace(stored);
        if changed {
            store.beat();
        }
    }

    /// Re-queues the batches a page that is gone left in the store.
    pub(super) fn recover(self: &Rc<Self>) {
        let Some(store) = &self.store else { return };
        let weak = Rc::downgrade(self);
        let take = Closure::<dyn Fn(String, String)>::new(move |url: String, body: String| {
            let Some(inner) = weak.upgrade() else { return };
            let log_event = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&log_event, &"url".into(), &url.into());
            let params = js_sys::JSON::parse(&body).unwrap_or(JsValue::UNDEFINED);
            let _ = js_sys::Reflect::set(&log_event, &"params".into(), &params);
            if let Ok(events) = unbatch(&log_event) {
                // Old events go out at once; invalid or unplaceable ones are dropped.
                let _ = inner.core.borrow_mut().process_all(&events, now());
                inner.core.borrow_mut().flush();
                inner.pump();
            }
        });
        let _ = store.recover(take.as_ref().unchecked_ref(), STALE_TAB_MS);
        // The store calls `take` until its (possibly Web-Locked) recovery is over.
        take.forget();
    }
}
