//! The JavaScript binding: the only code that touches JS.
//!
//! - [`api`]: the exported `BatchEventProcessor` class.
//! - [`options`]: the options, their TypeScript types and their validation.
//! - [`packer`]: moving a UserEvent into wasm memory, packed.
//! - [`dispatch`]: the default `fetch` dispatcher and custom JS dispatchers.
//! - [`timer`]: the flush timer on the global `setTimeout`.
//! - [`listeners`]: subscribed callbacks.
//! - [`error`]: the one error type of this layer, converted to a JS error.

pub mod api;
pub mod dispatch;
pub mod error;
pub mod listeners;
pub mod options;
pub mod packer;
pub mod timer;
