/**
 * Crash audit: `unc dev` writes the dev chain's genesis.json at its first start and reads it at
 * every start after. A start cut part-way through that write (here by a file-size limit: the kernel
 * refuses the rest, as a full disk would, and the process exits) must not leave a cut genesis that
 * every later start fails to parse until the user resets the chain.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type DevNode, startDev, tempHome, UNC } from './helpers.js';

const home = tempHome();
let dev: DevNode | undefined;
after(async () => {
  await dev?.stop('SIGKILL');
  home.cleanup();
});

test('aud-crash: unc dev cut while writing its genesis starts again without --reset', async () => {
  // 2 KiB: every folder and file before the genesis fits; the genesis (some 5 KiB) does not.
  const cut = spawnSync(
    'bash',
    ['-c', 'ulimit -f 2 && exec "$0" "$1" dev --home "$2" --rpc-port 0', process.execPath, UNC, home.dir],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.notEqual(cut.status, 0, `the genesis write was not cut: ${cut.stdout}${cut.stderr}`);
  assert.match(cut.stderr, /EFBIG/);
  const genesisPath = join(home.dir, 'genesis.json');
  if (existsSync(genesisPath)) assert.doesNotThrow(() => JSON.parse(readFileSync(genesisPath, 'utf8')));
  dev = await startDev(home.dir);
});
