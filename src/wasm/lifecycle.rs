//! The browser lifecycle of a processor: the page being hidden or left (send what is
//! queued in beacon-sized bodies), `online` / `offline`, persisting unconfirmed batches
//! to storage and recovering those a closed page left behind.
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
use crate::core::Outcome;

#[wasm_bindgen(module = "/src/wasm/js/page.js")]
extern "C" {
    #[wasm_bindgen(js_name = watchPage)]
    pub(super) fn watch_page(on_hide: &Function) -> JsValue;
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
    #[wasm_bindgen(method)]
    pub(super) fn leave(this: &BatchStore);
    #[wasm_bindgen(method, getter)]
    pub(super) fn errors(this: &BatchStore) -> f64;
}

/// A page whose alive mark is older than this is gone: its batches may be recovered.
const STALE_TAB_MS: f64 = 30_000.0;

/// Largest body sent while the page goes away: beacons and keepalive requests are
/// capped at 64 KiB.
const UNLOAD_BODY_BYTES: usize = 64_000;

impl Inner {
    /// The page is being hidden or left: send everything now, in bodies a beacon takes.
    /// The processor goes on working if the page stays or comes back.
    pub(super) fn on_page_hide(self: &Rc<Self>) {
        if is_offline() {
            // Nothing can go now: keep everything for the next page (or for `online`).
            self.core.borrow_mut().flush();
            self.persist();
            if let Some(store) = &self.store {
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
        if let Some(store) = &self.store {
            store.leave();
        }
        for batch in rest {
            self.send(batch, true);
        }
        self.pump();
    }

    /// Subscribes `on_event` through a glue `watch*` function whose remover is kept
    /// for `close()`; nothing happens where the glue finds nothing to watch.
    pub(super) fn watch(
        self: &Rc<Self>,
        subscribe: fn(&Function) -> JsValue,
        on_event: fn(&Rc<Inner>),
    ) {
        let weak = Rc::downgrade(self);
        let callback = Closure::<dyn Fn()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                on_event(&inner);
            }
        });
        if let Ok(unwatch) = subscribe(callback.as_ref().unchecked_ref()).dyn_into::<Function>() {
            // The closure lives as long as the listener (until close()).
            callback.forget();
            self.unwatch.borrow_mut().push(unwatch);
        }
    }

    /// Mirrors the core's unsettled batches into the store: new ones are written
    /// (before they are sent), settled or replaced ones removed.
    pub(super) fn persist(&self) {
        let Some(store) = &self.store else { return };
        // Runs on every pump: nothing to compare while no batch came or went.
        let version = self.core.borrow().batches_version();
        if self.stored_version.replace(Some(version)) == Some(version) {
            return;
        }
        let current = self.core.borrow().unsettled_ids();
        let current_set: std::collections::HashSet<u64> = current.iter().copied().collect();
        // Taken out of its cell while the store (a Storage-like object of the page's,
        // possibly user code) is called: no borrow lives across those calls. A
        // re-entrant persist sees nothing stored and saves again, which is idempotent.
        let mut stored = self.stored.take();
        let stored_before: std::collections::HashSet<u64> = stored.iter().copied().collect();
        stored.retain(|id| {
            let keep = current_set.contains(id);
            if !keep {
                store.remove(*id as f64);
            }
            keep
        });
        let mut changed = false;
        for id in current {
            if stored_before.contains(&id) {
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
            stored.sort_unstable();
            stored.dedup();
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
