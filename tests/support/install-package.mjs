// Packs pkg/ with `npm pack` and installs the tarball into target/consumer, so that the
// Node and workerd suites import the package exactly as a user would:
// `import { BatchEventProcessor } from 'batch-event-processor'`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const target = path.join(root, 'target');
const consumer = path.join(target, 'consumer');

mkdirSync(target, { recursive: true });
for (const f of readdirSync(target)) if (f.endsWith('.tgz')) rmSync(path.join(target, f));
const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', target, path.join(root, 'pkg')], {
  encoding: 'utf8',
});
const tarball = path.join(target, out.trim().split('\n').pop());

rmSync(consumer, { recursive: true, force: true });
mkdirSync(consumer, { recursive: true });
writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', '--silent', tarball], {
  cwd: consumer,
  stdio: 'inherit',
});
// Entry points that resolve the package through its `exports`, as a user's code would.
writeFileSync(path.join(consumer, 'esm.mjs'), "export * from 'batch-event-processor';\n");
writeFileSync(path.join(consumer, 'cjs.cjs'), "module.exports = require('batch-event-processor');\n");
console.log(`installed ${path.basename(tarball)} into ${path.relative(root, consumer)}`);
