// Lifetime (DESIGN.md §3): on the wasm-bindgen class, `free()` and `[Symbol.dispose]()`
// start `close()` instead of freeing the Rust value at once (queue and all, leaving a
// handle on which `close()` throws "null pointer passed to rust"). Every entry applies
// it to the class once, when it has the class. The memory of a closed processor is
// released once it is settled and unreachable (wasm-bindgen's FinalizationRegistry).
// Done here, in JS, rather than by a `#[wasm_bindgen(start)]` hook: a start function
// makes wasm-bindgen-test's browser runner hang at "Loading scripts...".
// Must not: touch the wasm or hold state.

/** Makes `free()` and `[Symbol.dispose]()` of `Class` start `close()` and return. */
export function closeOnFree(Class) {
  const proto = Class.prototype;
  function free() {
    this.close();
  }
  proto.free = free;
  if (typeof Symbol.dispose === 'symbol') proto[Symbol.dispose] = free;
}
