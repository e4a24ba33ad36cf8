/**
 * UncNode.start's `signal` (a SIGINT or SIGTERM during `unc start`/`unc dev`, packages/cli
 * shutdown.ts): aborted at any point of the start-up, start() takes no further step, stops what it
 * started (libp2p, the RPC server, the database) and rejects with START_ABORTED, so the data
 * directory opens again at once and no port is left listening.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { devGenesisJson, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';
import { startNetwork } from '../src/p2p/libp2p.js';
import { ChainDb } from '../src/storage/db.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'unc-start-abort-'));
  dirs.push(dir);
  return dir;
}

async function assertOpens(dir: string): Promise<void> {
  const db = await ChainDb.open(join(dir, 'chain'));
  await db.close();
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const genesis = devGenesisJson({ blockTimeMs: 1000, epochBlocks: 24 });

/** start() as the test expects it to end (rejected); a node it started anyway is stopped, not left running. */
async function startStopped(opts: Parameters<typeof UncNode.start>[0]): Promise<void> {
  const node = await UncNode.start(opts);
  await node.stop();
}

describe('UncNode.start with an abort signal', () => {
  test('aborted before it starts: nothing is opened', async () => {
    const dir = dataDir();
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(
      startStopped({ dataDir: dir, genesis, rpcPort: 0, logger: silentLogger, signal: controller.signal }),
      (e: Error & { code?: string }) => e.code === 'START_ABORTED',
    );
  });

  test('aborted while libp2p starts: the network, the RPC server and the database are stopped, the data dir opens again', async () => {
    const dir = dataDir();
    const controller = new AbortController();
    const rpcPort = await freePort();
    let p2pPort = 0;
    let resolved = false;
    await assert.rejects(
      UncNode.start({
        dataDir: dir,
        genesis,
        validatorSeed: devValidator().seed,
        rpcPort,
        logger: silentLogger,
        signal: controller.signal,
        network: async (handlers, chain) => {
          const network = await startNetwork({
            listen: ['/ip4/127.0.0.1/tcp/0'],
            nodeKey: new Uint8Array(32).fill(7),
            chainId: chain.genesis.chainId,
            genesisHash: chain.genesisHash,
            handlers,
            logger: silentLogger,
          });
          p2pPort = Number(/\/tcp\/(\d+)/.exec(network.listenAddrs[0] ?? '')?.[1] ?? 0);
          assert.ok(await listening(rpcPort), 'the RPC server listens by now');
          // The signal comes while the network starts.
          controller.abort();
          return network;
        },
      }).then(async (node) => {
        resolved = true;
        await node.stop();
      }),
      (e: Error & { code?: string }) => e.code === 'START_ABORTED',
    );
    assert.equal(resolved, false);
    assert.ok(p2pPort > 0, 'libp2p listened');
    assert.equal(await listening(p2pPort), false, 'libp2p still listens');
    assert.equal(await listening(rpcPort), false, 'the RPC server still listens');
    await assertOpens(dir);
  });

  test('aborted while the chain opens: the database is closed, no RPC port is opened', async () => {
    const dir = dataDir();
    const controller = new AbortController();
    const rpcPort = await freePort();
    // Chain.open logs through the node's "chain" logger once the chain is open: the signal comes then.
    const logger = { ...silentLogger, child: () => ({ ...silentLogger, info: () => controller.abort() }) };
    await assert.rejects(
      startStopped({
        dataDir: dir,
        genesis,
        rpcPort,
        logger: logger as typeof silentLogger,
        signal: controller.signal,
      }),
      (e: Error & { code?: string }) => e.code === 'START_ABORTED',
    );
    assert.equal(controller.signal.aborted, true);
    assert.equal(await listening(rpcPort), false);
    await assertOpens(dir);
  });
});

/** A port nothing listens on now (the system's pick, given back). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
