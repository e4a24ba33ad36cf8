/**
 * Crash audit: provisioning a chip writes its AK files (ak.pub, ak.spki.pem, ak.cert.pem, chain.pem,
 * ak.json); `unc dev` provisions a chip only while ak.cert.pem is missing and reads ak.json and
 * chain.pem at every start. Written in place, in that order, a kill or a full disk left a cut file
 * or an ak.cert.pem without its ak.json, and every later start failed until the chain was reset.
 * Each file must appear whole (renamed in), ak.cert.pem last. node:fs is wrapped here (the ESM
 * bindings synced) to see how each file appears.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { createVendorCa, provisionChip, Swtpm, Tpm } from '../src/index.js';
import { NEED_SWTPM, tempDir } from './helpers.js';

let swtpm: Swtpm;
let tpm: Tpm;
let dir: { path: string; remove(): Promise<void> };

before(async () => {
  if (NEED_SWTPM) return;
  dir = await tempDir('aud-crash-provision-');
  swtpm = await Swtpm.start();
  tpm = new Tpm(swtpm.transport());
  await tpm.startup();
});

after(async () => {
  await tpm?.close();
  await swtpm?.dispose();
  await dir?.remove();
});

test('aud-crash: a provisioned chip folder gets each file whole, ak.cert.pem last', {
  skip: NEED_SWTPM,
}, async () => {
  const chipDir = join(dir.path, 'chip');
  const ca = createVendorCa({
    vendorId: 'acme',
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2035-01-01T00:00:00Z'),
  });
  const events: string[] = [];
  const inChip = (p: unknown) => typeof p === 'string' && dirname(p) === chipDir;
  const real = {
    writeFile: fs.promises.writeFile,
    writeFileSync: fs.writeFileSync,
    renameSync: fs.renameSync,
  };
  const p = fs.promises as unknown as Record<string, unknown>;
  const f = fs as unknown as Record<string, unknown>;
  p.writeFile = (file: unknown, ...rest: unknown[]) => {
    if (inChip(file)) events.push(`in place ${basename(file as string)}`);
    return (real.writeFile as (...a: unknown[]) => unknown)(file, ...rest);
  };
  f.writeFileSync = (file: unknown, ...rest: unknown[]) => {
    if (inChip(file)) events.push(`in place ${basename(file as string)}`);
    return (real.writeFileSync as (...a: unknown[]) => unknown)(file, ...rest);
  };
  f.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
    real.renameSync(from, to);
    if (inChip(to)) events.push(`whole ${basename(to as string)}`);
  };
  syncBuiltinESMExports();
  try {
    await provisionChip(tpm, ca, {
      model: 'acme-x1',
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2030-01-01T00:00:00Z'),
      outDir: chipDir,
    });
  } finally {
    Object.assign(p, { writeFile: real.writeFile });
    Object.assign(f, { writeFileSync: real.writeFileSync, renameSync: real.renameSync });
    syncBuiltinESMExports();
  }
  assert.equal(events.length, 5, events.join(', '));
  assert.ok(
    events.every((e) => e.startsWith('whole ')),
    events.join(', '),
  );
  assert.equal(events.at(-1), 'whole ak.cert.pem', events.join(', '));
});
