/**
 * Crash audit: `unc testnet` writes its genesis.json (and testnet.json) once and reads them at
 * every later start. A start cut part-way through the genesis write (here by a file-size limit: the
 * kernel refuses the rest, as a full disk would, and the process exits) must not leave a cut file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { tempHome, UNC } from './helpers.js';

const home = tempHome();
after(() => home.cleanup());

test('aud-crash: unc testnet cut while writing its genesis leaves none or a whole one', () => {
  const dir = join(home.dir, 'testnet');
  // 2 KiB: each node home's files fit; the genesis does not.
  const cut = spawnSync(
    'bash',
    [
      '-c',
      'ulimit -f 2 && exec "$0" "$1" testnet --home "$2" --dir "$3" --validators 1 --chips-per-validator 0',
      process.execPath,
      UNC,
      home.dir,
      dir,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.notEqual(cut.status, 0, `the genesis write was not cut: ${cut.stdout}${cut.stderr}`);
  assert.match(cut.stderr, /EFBIG/);
  const genesisPath = join(dir, 'genesis.json');
  if (existsSync(genesisPath)) assert.doesNotThrow(() => JSON.parse(readFileSync(genesisPath, 'utf8')));
});
