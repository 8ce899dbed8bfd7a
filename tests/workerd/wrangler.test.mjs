// The example Worker in www/worker/ bundles with wrangler (`wrangler deploy --dry-run`),
// resolving the packed package through its `workerd` export condition like a user's
// project would. Run: node --test tests/workerd/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const project = path.join(root, 'target/worker-example');

test('www/worker bundles with wrangler deploy --dry-run', () => {
  execFileSync(process.execPath, [path.join(root, 'tests/support/install-package.mjs')], { stdio: 'ignore' });
  rmSync(project, { recursive: true, force: true });
  mkdirSync(project, { recursive: true });
  cpSync(path.join(root, 'www/worker/wrangler.toml'), path.join(project, 'wrangler.toml'));
  cpSync(path.join(root, 'www/worker/src'), path.join(project, 'src'), { recursive: true });
  symlinkSync(path.join(root, 'target/consumer/node_modules'), path.join(project, 'node_modules'), 'dir');
  const out = execFileSync(path.join(root, 'node_modules/.bin/wrangler'), ['deploy', '--dry-run', '--outdir', 'dist'], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1', HOME: path.join(project, '.home') },
  });
  assert.match(out, /--dry-run: exiting now/);
  assert.match(out, /env\.EVENTS/);
  const files = readdirSync(path.join(project, 'dist'));
  assert.ok(files.some((f) => f.endsWith('.wasm')), files.join(', '));
  const bundle = readFileSync(path.join(project, 'dist', files.find((f) => f.endsWith('.js'))), 'utf8');
  assert.ok(!bundle.includes('import.meta.url'), 'the workerd entry must not touch import.meta.url');
  console.log(out.split('\n').filter((l) => /Total Upload|env\./.test(l)).join('\n'));
});
