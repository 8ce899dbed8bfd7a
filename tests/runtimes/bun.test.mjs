// The shared runtime subset (cases.mjs) in Bun, importing the installed package through
// its `exports`. Run: bun test ./tests/runtimes/bun.test.mjs
import { test } from 'bun:test';
import * as pkg from '../../target/consumer/esm.mjs';
import { runtimeCases } from './cases.mjs';

for (const [name, fn] of runtimeCases(pkg)) test(name, fn, 30_000);
