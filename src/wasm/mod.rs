//! The JavaScript binding: the only code that touches JS.
//!
//! - [`api`]: the exported `BatchEventProcessor` class and its JS-facing methods.
//! - [`pump`]: the shared state behind a processor, pumping the core, sending and
//!   settling batches, `flush()` / `close()` waiters.
//! - [`lifecycle`]: browsers: page hide, online/offline, persistence and recovery.
//! - [`sdk`]: the Optimizely SDK adapter (`processLogEvent`, `asEventDispatcher`).
//! - [`workers`]: Cloudflare Workers helpers (`flushWith`).
//! - [`early`]: browsers: taking the events a processor packed before the module was
//!   ready (`processPacked`, internal to the browser entry).
//! - [`options`]: the options' TypeScript types; reads what js/options.js validated.
//! - [`packer`]: moving a UserEvent into wasm memory, packed.
//! - [`dispatch`]: the default `fetch` dispatcher and custom JS dispatchers.
//! - [`timer`]: the flush timer on the global `setTimeout`.
//! - [`listeners`]: subscribed callbacks.
//! - [`error`]: the one error type of this layer, converted to a JS error.
//!
//! The JS half lives in `src/wasm/js/`, one ES module per concern (packer, options,
//! checks, log-event, sdk-adapter, page, storage, runtime); README "Layout" says how `pkg/`
//! code reaches the same copies through `pkg/dist/glue/`.

pub mod api;
pub mod dispatch;
pub mod early;
pub mod error;
pub mod lifecycle;
pub mod listeners;
pub mod options;
pub mod packer;
pub mod pump;
pub mod sdk;
pub mod timer;
pub mod workers;
