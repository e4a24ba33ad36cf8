import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeAddress, formatUnc, UncError } from '@unc/core';
import { DevSoftSigner, MinerAgent } from '@unc/miner';
import {
  createLogger,
  DEV_MINER_ACCOUNT,
  DEV_MNEMONIC,
  DEV_MODELS,
  devAccounts,
  devChipKey,
  devGenesisJson,
  devGovernanceKey,
  devKey,
  devValidator,
  UncNode,
} from '@unc/node';
import { Command } from 'commander';
import { ctxOf, withCommon } from '../context.js';

function port(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UncError('BAD_PORT', `invalid port "${text}"`);
  return n;
}

function count(text: string, name: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UncError('BAD_ARGUMENT', `invalid --${name} "${text}": ${min}…${max}`);
  }
  return n;
}

function blockTime(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 10 || n > 600_000) {
    throw new UncError('BAD_BLOCK_TIME', `invalid block time "${text}": milliseconds, 10…600000`);
  }
  return n;
}

export function devCommand(): Command {
  return withCommon(
    new Command('dev')
      .description('run a local single-validator dev chain with funded dev accounts')
      .option('--rpc-port <port>', 'RPC port (0 picks a free one)', '3030')
      .option('--rpc-host <host>', 'RPC listen address', '127.0.0.1')
      .option('--block-time <ms>', 'milliseconds between blocks', '1000')
      .option('--reset', 'delete the chain data and start from a fresh genesis')
      .option('--chips <n>', 'software dev chips driven by the dev miner (dev9 owns them)', '4')
      .option('--epoch-blocks <n>', 'blocks per POCI epoch (fresh genesis only)', '60'),
  ).action(
    async (
      opts: { rpcPort: string; rpcHost: string; blockTime: string; reset?: boolean; chips: string; epochBlocks: string },
      cmd: Command,
    ) => {
      const ctx = ctxOf(cmd);
      const rpcPort = port(opts.rpcPort);
      const blockTimeMs = blockTime(opts.blockTime);
      const chipCount = count(opts.chips, 'chips', 0, 1000);
      const epochBlocks = count(opts.epochBlocks, 'epoch-blocks', 24, 1_000_000);
      const home = ctx.home;
      const dataDir = join(home, 'data');
      const genesisPath = join(home, 'genesis.json');
      if (opts.reset) {
        rmSync(dataDir, { recursive: true, force: true });
        rmSync(genesisPath, { force: true });
      }
      mkdirSync(home, { recursive: true });
      if (!existsSync(genesisPath)) {
        writeFileSync(genesisPath, `${JSON.stringify(devGenesisJson({ blockTimeMs, epochBlocks }), null, 2)}\n`);
      }
      const genesis = JSON.parse(readFileSync(genesisPath, 'utf8')) as Record<string, unknown>;
      const chainId = String(genesis.chainId);
      const keyring = ctx.keyring();
      const accounts = devAccounts();
      for (const a of accounts) keyring.addTest(a.name, a.seed, chainId);
      keyring.addTest('governance', devGovernanceKey().seed, chainId);

      const logger = createLogger('dev');
      const node = await UncNode.start({
        dataDir,
        genesis,
        validatorSeed: devValidator().seed,
        rpcHost: opts.rpcHost,
        rpcPort,
        blockTimeMs,
        logger,
      });
      const chips = Array.from({ length: chipCount }, (_, i) => {
        const k = devChipKey(i);
        return new DevSoftSigner(k.seed, DEV_MODELS[i % DEV_MODELS.length]!.modelId, k.name);
      });
      const miner = new MinerAgent({
        nodeUrl: node.rpcUrl,
        ownerSeed: devKey(DEV_MINER_ACCOUNT).seed,
        chips,
        statusPort: 0,
        logger: logger.child('miner'),
      });
      if (chipCount > 0) await miner.start();
      writeFileSync(
        join(home, 'config.json'),
        `${JSON.stringify({ node: node.rpcUrl, miner: miner.statusUrl }, null, 2)}\n`,
      );

      const balances = new Map(
        (genesis.accounts as { address: string; balance: string }[]).map((a) => [
          a.address,
          BigInt(a.balance),
        ]),
      );
      const summary = {
        chainId,
        rpc: node.rpcUrl,
        ws: node.wsUrl,
        home,
        dataDir,
        blockTimeMs,
        height: Number(node.chain.height),
        miner: { status: miner.statusUrl, chips: chipCount },
        accounts: accounts.map((a) => ({
          name: a.name,
          address: encodeAddress(a.address),
          balance: (balances.get(encodeAddress(a.address)) ?? 0n).toString(),
        })),
        mnemonic: DEV_MNEMONIC,
      };
      ctx.print(summary, () =>
        [
          `UtilityNet dev chain ${chainId} (height ${summary.height})`,
          `  RPC         ${node.rpcUrl}   (WebSocket ${node.wsUrl})`,
          `  Data dir    ${dataDir}`,
          `  Block time  ${blockTimeMs} ms`,
          `  Dev miner   ${chipCount} software chips owned by dev${DEV_MINER_ACCOUNT}${miner.statusUrl ? ` (status ${miner.statusUrl}/status)` : ''}`,
          '',
          'Dev accounts (keyring "test": unencrypted, usable only on this dev chain):',
          ...summary.accounts.map(
            (a) => `  ${a.name.padEnd(5)} ${a.address}  ${formatUnc(BigInt(a.balance)).padStart(12)} UNC`,
          ),
          '',
          `Dev mnemonic (public, never use for real funds): ${DEV_MNEMONIC}`,
          '',
          `Try: npx unc tx transfer --from dev0 --to ${summary.accounts[1]!.address} --amount 12.5 --yes`,
          '     npx unc status',
          '     npx unc chip list',
        ].join('\n'),
      );

      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info(`received ${signal}, stopping`);
        miner
          .stop()
          .then(() => node.stop())
          .then(() => process.exit(0))
          .catch((err) => {
            logger.error('error while stopping', { error: (err as Error).message });
            process.exit(1);
          });
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    },
  );
}
