/**
 * A dev-genesis node with fast blocks and short epochs for RPC tests of one file: started before
 * the file's tests, stopped (its data directory removed) after them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { UncClient } from '@unc/sdk';
import { devGenesisJson, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { type NodeOptions, UncNode } from '../src/node.js';

export interface DevNodeHandle {
  node: UncNode;
  client: UncClient;
}

/** Registers the hooks; the handle's fields are set once `before` has run. */
export function useDevNode(name: string, options: Pick<NodeOptions, 'rpc'> = {}): DevNodeHandle {
  const handle = {} as DevNodeHandle;
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), `unc-${name}-`));
    handle.node = await UncNode.start({
      dataDir: dir,
      genesis: devGenesisJson({ blockTimeMs: 100, epochBlocks: 24 }),
      validatorSeed: devValidator().seed,
      rpcPort: 0,
      logger: silentLogger,
      ...options,
    });
    handle.client = new UncClient(handle.node.rpcUrl);
  });
  after(async () => {
    await handle.node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return handle;
}
