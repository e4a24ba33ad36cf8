/**
 * `unc testnet`: several validators on this machine, each a separate `unc start` process with its
 * own home (node key, validator key, data), all listed in one dev genesis, all peered with each
 * other over 127.0.0.1, each with a miner agent and its own dev chips. It records how each node
 * was started in <dir>/testnet.json, so a node that was stopped can be started again by hand.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, UncError } from '@unc/core';
import { DEV_MINER_ACCOUNT, devGenesisJson, removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { Command } from 'commander';
import { checkHome, countOption, ctxOf, makeHome } from '../context.js';
import type { Keyring } from '../keyring.js';
import { type MempoolFlags, mempoolArgs, withMempoolOptions } from '../mempool-options.js';
import { initHome, type NodeHomeInfo } from './init.js';

export interface TestnetNode {
  moniker: string;
  home: string;
  peerId: string;
  validatorPublicKey: string;
  p2p: string;
  rpc: string;
  /** The `unc` arguments that start this node (after the program path). */
  args: string[];
  pid: number | null;
}

export interface TestnetFile {
  genesis: string;
  nodes: TestnetNode[];
}

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/**
 * The home-and-genesis step of `unc testnet`: the validators' homes and the genesis of a fresh
 * testnet in `dir` (those recorded there, for one started before), and the public dev keys in
 * `keyring` for the genesis's chain id (its accounts are the dev accounts).
 */
export async function prepareTestnet(opts: {
  dir: string;
  validators: number;
  blockTimeMs: number;
  keyring: Keyring;
}): Promise<{ homes: NodeHomeInfo[]; genesisPath: string; recordPath: string }> {
  const { dir, validators: n, blockTimeMs } = opts;
  // Before anything is made: refused after the homes, the next run found them without testnet.json.
  opts.keyring.checkDevKeys('unc testnet');
  const genesisPath = join(dir, 'genesis.json');
  const recordPath = join(dir, 'testnet.json');
  removeWholeLeftovers(genesisPath);
  removeWholeLeftovers(recordPath);
  let homes: NodeHomeInfo[];
  if (existsSync(recordPath)) {
    const previous = JSON.parse(readFileSync(recordPath, 'utf8')) as TestnetFile;
    if (previous.nodes.length !== n) {
      throw new UncError(
        'TESTNET_EXISTS',
        `${dir} holds a testnet of ${previous.nodes.length} validators: use --reset or another --dir`,
      );
    }
    homes = previous.nodes.map((p) => ({
      home: p.home,
      moniker: p.moniker,
      peerId: p.peerId,
      validatorPublicKey: p.validatorPublicKey,
    }));
  } else {
    makeHome(dir, 'testnet folder');
    homes = [];
    for (let i = 0; i < n; i++) homes.push(await initHome(join(dir, `node${i}`), `node${i}`));
    // Fresh validator keys (initHome above), so no validator key is in two testnets' sets and
    // sharing the dev chain id frames no one (docs/consensus.md); its accounts are the public
    // dev keys, which the dev chain id lets the keyring's dev0…dev9 spend from.
    const genesis = devGenesisJson({
      blockTimeMs,
      validators: homes.map((h) => ({ publicKey: fromHex(h.validatorPublicKey, 32), name: h.moniker })),
    });
    // Whole (writeFileWhole): cut in place by a kill or a full disk, every later start of the
    // testnet failed to parse it until --reset.
    writeFileWhole(genesisPath, `${JSON.stringify(genesis, null, 2)}\n`, 0o644);
  }
  // The README sends from dev0 on a testnet as on `unc dev`: the same keys, for this genesis.
  const genesis = JSON.parse(readFileSync(genesisPath, 'utf8')) as { chainId: unknown };
  opts.keyring.addDevKeys(String(genesis.chainId), 'unc testnet');
  return { homes, genesisPath, recordPath };
}

export function testnetCommand(): Command {
  return withMempoolOptions(new Command('testnet'))
    .description('run several local validators, each its own `unc start` process, peered over 127.0.0.1')
    .option('--validators <n>', 'number of validators', '4')
    .option('--dir <dir>', 'where the nodes live (default: <home>/testnet)')
    .option('--base-port <port>', 'node i listens for peers on base+2i and for RPC on base+2i+1', '26600')
    .option('--chips-per-validator <n>', 'dev chips driven by each node’s miner agent', '2')
    .option('--block-time <ms>', 'milliseconds between blocks (fresh testnet only)', '1000')
    .option('--reset', 'delete the testnet directory and start from a fresh genesis')
    .option(
      '--pace-heights <on|off>',
      "writes consensus.paceHeights into each node's config.json (proposal size follows height times)",
    )
    .action(
      async (
        opts: {
          validators: string;
          dir?: string;
          basePort: string;
          chipsPerValidator: string;
          blockTime: string;
          reset?: boolean;
          paceHeights?: string;
        } & MempoolFlags,
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const n = countOption(opts.validators, 'validators', 1, 9);
        const basePort = countOption(opts.basePort, 'base-port', 1024, 65535 - 2 * n);
        const chips = countOption(opts.chipsPerValidator, 'chips-per-validator', 0, 64);
        const blockTimeMs = countOption(opts.blockTime, 'block-time', 100, 600_000);
        const dir = resolve(opts.dir ?? join(ctx.home, 'testnet'));
        if (opts.paceHeights !== undefined && opts.paceHeights !== 'on' && opts.paceHeights !== 'off')
          throw new UncError('BAD_ARGUMENT', `invalid --pace-heights "${opts.paceHeights}": on or off`);
        // It holds every validator's home and testnet.json, which names them: held to a home's rule.
        checkHome(dir, 'testnet folder');
        // Before --reset: a clash with a key of the user's refused after it cost them the testnet.
        ctx.keyring().checkDevKeys('unc testnet');
        if (opts.reset) rmSync(dir, { recursive: true, force: true });
        const { homes, genesisPath, recordPath } = await prepareTestnet({
          dir,
          validators: n,
          blockTimeMs,
          keyring: ctx.keyring(),
        });

        if (opts.paceHeights !== undefined)
          for (const h of homes) {
            const path = join(h.home, 'config.json');
            const config = existsSync(path)
              ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>)
              : {};
            const consensus = {
              ...(config.consensus as Record<string, unknown> | undefined),
              paceHeights: opts.paceHeights === 'on',
            };
            writeFileWhole(path, `${JSON.stringify({ ...config, consensus }, null, 2)}\n`, 0o644);
          }

        const p2pAddr = (i: number) => `/ip4/127.0.0.1/tcp/${basePort + 2 * i}/p2p/${homes[i]!.peerId}`;
        const nodes: TestnetNode[] = homes.map((h, i) => ({
          moniker: h.moniker,
          home: h.home,
          peerId: h.peerId,
          validatorPublicKey: h.validatorPublicKey,
          p2p: p2pAddr(i),
          rpc: `http://127.0.0.1:${basePort + 2 * i + 1}`,
          args: [
            'start',
            '--home',
            h.home,
            '--genesis',
            genesisPath,
            '--peers',
            homes
              .map((_, j) => j)
              .filter((j) => j !== i)
              .map(p2pAddr)
              .join(','),
            '--p2p-port',
            String(basePort + 2 * i),
            '--rpc-port',
            String(basePort + 2 * i + 1),
            '--validator',
            '--dev-chips',
            String(chips),
            '--dev-chip-offset',
            String(i * chips),
            // Each validator's chips belong to its own dev account, counting down from the dev miner's.
            '--dev-miner-account',
            String(DEV_MINER_ACCOUNT - i),
            ...mempoolArgs(opts),
          ],
          pid: null,
        }));

        const children: ChildProcess[] = [];
        let stopping = false;
        const started = nodes.map(
          (node, i) =>
            new Promise<void>((resolveStarted, reject) => {
              // UNC_TESTNET_NODE_FLAGS: node flags for each validator process (e.g. `--cpu-prof
              // --cpu-prof-dir=DIR` to profile them under bench:consensus); NODE_OPTIONS refuses --cpu-prof.
              const nodeFlags = (process.env.UNC_TESTNET_NODE_FLAGS ?? '').split(' ').filter(Boolean);
              const child = spawn(process.execPath, [...nodeFlags, MAIN, ...node.args], {
                stdio: ['ignore', 'pipe', 'pipe'],
                env: process.env,
              });
              children.push(child);
              node.pid = child.pid ?? null;
              let out = '';
              const prefix = `[${node.moniker}] `;
              const relay = (stream: NodeJS.WriteStream) => (d: Buffer) => {
                const text = d.toString();
                if (out.length < 64 * 1024) out += text;
                for (const line of text.split('\n')) if (line) stream.write(`${prefix}${line}\n`);
              };
              child.stdout!.on('data', relay(process.stdout));
              child.stderr!.on('data', relay(process.stderr));
              child.stdout!.on('data', () => {
                if (/RPC\s+http/.test(out)) resolveStarted();
              });
              child.on('exit', (code, signal) => {
                if (!stopping) {
                  process.stderr.write(`${prefix}exited (${signal ?? `code ${code}`})\n`);
                }
                reject(new Error(`node ${i} exited before it started:\n${out}`));
              });
            }),
        );
        const stopAll = async (signal: string, exitCode = 0) => {
          if (stopping) return;
          stopping = true;
          process.stderr.write(`received ${signal}: stopping ${children.length} nodes\n`);
          await Promise.all(
            children.map(
              (c) =>
                new Promise<void>((done) => {
                  if (c.exitCode !== null || c.signalCode !== null) return done();
                  c.once('exit', () => done());
                  c.kill('SIGTERM');
                }),
            ),
          );
          process.exit(exitCode);
        };
        process.on('SIGINT', () => void stopAll('SIGINT'));
        process.on('SIGTERM', () => void stopAll('SIGTERM'));

        const record: TestnetFile = { genesis: genesisPath, nodes };
        writeFileWhole(recordPath, `${JSON.stringify(record, null, 2)}\n`, 0o644);
        try {
          await Promise.all(started);
        } catch (err) {
          process.stderr.write(`error: ${(err as Error).message}\n`);
          await stopAll('a failed start', 1);
        }
        ctx.print(record, () =>
          [
            `UtilityNet testnet: ${n} validators (genesis ${genesisPath})`,
            ...nodes.map(
              (node) => `  ${node.moniker.padEnd(6)} RPC ${node.rpc}   peer ${node.p2p}   pid ${node.pid}`,
            ),
            '',
            `Nodes are recorded in ${recordPath}. Ctrl-C stops them all.`,
            `Try: npx unc status --node ${nodes[0]!.rpc}`,
          ].join('\n'),
        );
      },
    );
}
