// The shared runtime subset (cases.mjs) in Deno 2, importing the installed package
// through its `exports` as a Deno user with a node_modules folder would. Run from the
// consumer project (see `make test-deno`):
//   cd target/consumer && deno test -A --node-modules-dir=manual ../../tests/runtimes/deno.test.mjs
import * as pkg from '../../target/consumer/esm.mjs';
import { runtimeCases } from './cases.mjs';

// Each case closes what it starts; Deno's op sanitizer would also flag the processor's
// own settled timers, which are not leaks.
for (const [name, fn] of runtimeCases(pkg)) Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
