// The shared runtime subset (cases.mjs) in Node, so the subset itself is known to pass
// where the full Node suite (tests/node/) does. Run: node --test tests/runtimes/node.test.mjs
import { test } from 'node:test';
import * as pkg from '../../target/consumer/esm.mjs';
import { runtimeCases } from './cases.mjs';

for (const [name, fn] of runtimeCases(pkg)) test(name, fn);
