#!/usr/bin/env node
// Runs every compiled test file (packages/*/dist/test/**/*.test.js) under node's test runner and
// closes with one plain summary line, `N passed, N failed`, that CI reads.
// Usage: node scripts/run-tests.mjs [substring filter …]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages')))
  walk(join(root, 'packages', pkg, 'dist', 'test'), files);
// Filters match the path below the repository root: a checkout whose own folder name holds the
// filter (a worktree named after its branch) would otherwise select every test.
const selected = files
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (selected.length === 0) {
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}

const child = spawn(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=2', ...selected],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, UNC_LOG_LEVEL: process.env.UNC_LOG_LEVEL ?? 'warn' },
  },
);
// The spec reporter prints its totals, then (on Node 20) the failures again, so the totals are
// taken from the last summary lines seen anywhere in the output.
const totals = {};
let partial = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const lines = (partial + chunk.toString()).split('\n');
  partial = lines.pop();
  for (const line of lines) {
    const m = /^(?:ℹ|#) (pass|fail|skipped) (\d+)$/.exec(line.trim());
    if (m) totals[m[1]] = Number(m[2]);
  }
});
child.on('close', (code) => {
  const count = (label) => totals[label] ?? 0;
  const passed = count('pass');
  const failed = count('fail');
  const skipped = count('skipped');
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
