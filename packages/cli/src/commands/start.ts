/**
 * `unc start`: runs a node of a network — consensus over libp2p with the peers given, block sync,
 * RPC — from a home made by `unc init` and a genesis file shared by every node of the chain.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { UncError } from '@unc/core';
import { type ChipSigner, DevSoftSigner, MinerAgent, URGENT_FEE_FILE } from '@unc/miner';
import {
  createLogger,
  DEV_MODELS,
  devChipKey,
  devKey,
  parseConnectionLimits,
  parseConsensusConfig,
  parseRpcLimits,
  parseTrustedCheckpoint,
  type RpcLimits,
  startNetwork,
  UncNode,
  writeFileWhole,
} from '@unc/node';
import { Command } from 'commander';
import { countOption, ctxOf, makeHome, portOption } from '../context.js';
import { isDevChainId } from '../keyring.js';
import { type MempoolFlags, mempoolOptions, withMempoolOptions } from '../mempool-options.js';
import { progressBar } from '../progress.js';
import { Shutdown } from '../shutdown.js';
import { type VerifyFlags, verifyThreadsOf, withVerifyOptions } from '../verify-options.js';
import { loadHome } from './init.js';

function peerList(text: string | undefined): string[] {
  if (!text) return [];
  const peers = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  for (const p of peers) {
    if (!/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+\/p2p\/\w+$/.test(p)) {
      throw new UncError(
        'BAD_PEER',
        `invalid peer "${p}": expected a multiaddr like /ip4/127.0.0.1/tcp/26656/p2p/<peer id>`,
      );
    }
  }
  return peers;
}

/**
 * `--p2p-announce`: where peers reach this node, announced instead of the listen addresses
 * (behind a NAT, or to announce a private address on a LAN chain on purpose).
 */
export function announceList(text: string | undefined): string[] {
  if (!text) return [];
  const addrs = text
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  for (const a of addrs) {
    // The address and port checked too: a bad one passed here and stopped the node's start with
    // a bare TypeError from libp2p instead of this error.
    const m = /^\/(ip4|ip6|dns4|dns6|dns)\/([^/]+)\/tcp\/(\d{1,5})$/.exec(a);
    const port = Number(m?.[3]);
    const hostOk =
      m !== null && (m[1] === 'ip4' ? isIP(m[2]!) === 4 : m[1] === 'ip6' ? isIP(m[2]!) === 6 : true);
    if (!m || !hostOk || port < 1 || port > 65_535) {
      throw new UncError(
        'BAD_ANNOUNCE',
        `invalid --p2p-announce address "${a}": expected a multiaddr like /ip4/203.0.113.5/tcp/26656`,
      );
    }
  }
  return addrs;
}

/** Where `unc start` listens for peers without `--p2p-host`: this machine only. */
export const DEFAULT_P2P_HOST = '127.0.0.1';

/**
 * `--p2p-host` (given once per address: `--p2p-host 0.0.0.0 --p2p-host ::` listens on IPv4 and
 * IPv6 both) and `--p2p-port`: the multiaddrs the node listens on. An IPv6 address, bare or in
 * brackets (`::`, `[::1]`), is listened on as `/ip6/…`: every host was written `/ip4/<host>`, so
 * `--p2p-host ::` gave libp2p `/ip4/::/…` and the node could not start, and no node listened on
 * IPv6. libp2p listens on an `/ip6/` address IPv6-only, so the two wildcards share one port. What
 * is announced of a wildcard's expansion is filtered for both families alike (node p2p/announce.ts:
 * the loopback, ULA fc00::/7, link-local, documentation and the LAN are not announced; an address
 * named here is). Refused (BAD_ARGUMENT): a name, a zoned address (`fe80::1%eth0`: a link's, not
 * a peer's), an IPv4-mapped one (`::ffff:1.2.3.4`: not bindable IPv6-only; give the IPv4 address),
 * or the same address twice, in any spelling (IPv6 is written canonically).
 */
export function p2pListenAddresses(hosts: readonly string[] | undefined, port: number): string[] {
  const list = hosts === undefined || hosts.length === 0 ? [DEFAULT_P2P_HOST] : hosts;
  const out: string[] = [];
  for (const given of list) {
    const host = given.trim().replace(/^\[(.*)\]$/, '$1');
    const family = host.includes('%') ? 0 : isIP(host);
    if (family === 0)
      throw new UncError(
        'BAD_ARGUMENT',
        `invalid --p2p-host "${given}": expected an IPv4 or IPv6 address to listen on, e.g. 0.0.0.0, ::, 127.0.0.1 or ::1`,
      );
    // One spelling per address (lower case, zeros compressed), so the same one given twice in two
    // spellings is caught here, not by libp2p's second bind of the port (EADDRINUSE at start).
    const ip = family === 6 ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
    // An IPv4-mapped address (`::ffff:1.2.3.4`) cannot be bound on libp2p's IPv6-only listener
    // (EINVAL at start): it is the IPv4 address's.
    if (family === 6 && /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(ip))
      throw new UncError(
        'BAD_ARGUMENT',
        `invalid --p2p-host "${given}": an IPv4-mapped IPv6 address; give the IPv4 address itself (--p2p-host 0.0.0.0 listens on every IPv4 address)`,
      );
    const addr = `/ip${family}/${ip}/tcp/${port}`;
    if (out.includes(addr)) throw new UncError('BAD_ARGUMENT', `--p2p-host ${given} is given twice`);
    out.push(addr);
  }
  return out;
}

/** Commander's collector of an option given more than once. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The RPC limits in a home's config.json (`"rpc": {"maxBatchSize": 100, …}`; docs/rpc.md). */
export function rpcLimitsOf(config: Record<string, unknown>, path: string): Partial<RpcLimits> {
  try {
    return parseRpcLimits(config.rpc, 'rpc');
  } catch (err) {
    throw new UncError('BAD_CONFIG', `${path}: ${(err as Error).message}`);
  }
}

/**
 * The weak-subjectivity checkpoint: `--trusted-checkpoint HEIGHT:HASH`, else config.json's
 * `"sync": {"trustedCheckpoint": "HEIGHT:HASH"}` (docs/operators.md); the flag wins.
 */
export function trustedCheckpointOf(
  flag: string | undefined,
  config: Record<string, unknown>,
  path: string,
): ReturnType<typeof parseTrustedCheckpoint> | undefined {
  if (flag !== undefined) {
    try {
      return parseTrustedCheckpoint(flag);
    } catch (err) {
      throw new UncError('BAD_CHECKPOINT', `--trusted-checkpoint: ${(err as Error).message}`);
    }
  }
  const sync = config.sync;
  if (sync === undefined) return undefined;
  const fail = (why: string): never => {
    throw new UncError('BAD_CONFIG', `${path}: sync${why}`);
  };
  if (typeof sync !== 'object' || sync === null || Array.isArray(sync)) return fail(' must be an object');
  for (const key of Object.keys(sync)) if (key !== 'trustedCheckpoint') fail(`.${key} is not a setting`);
  const cp = (sync as Record<string, unknown>).trustedCheckpoint;
  if (cp === undefined) return undefined;
  if (typeof cp !== 'string') return fail('.trustedCheckpoint must be a "HEIGHT:HASH" string');
  try {
    return parseTrustedCheckpoint(cp);
  } catch (err) {
    return fail(`.trustedCheckpoint: ${(err as Error).message}`);
  }
}

/**
 * The consensus settings in a home's config.json (`"consensus": {"paceHeights": false,
 * "blockWriteTimeoutMs": 60000}`; docs/operators.md): only keys this node knows, each of its type,
 * or a clear BAD_CONFIG.
 */
export function consensusOptionsOf(
  config: Record<string, unknown>,
  path: string,
): ReturnType<typeof parseConsensusConfig> {
  try {
    return parseConsensusConfig(config.consensus);
  } catch (err) {
    throw new UncError('BAD_CONFIG', `${path}: ${(err as Error).message}`);
  }
}

export interface StartOptions {
  genesis: string;
  peers?: string;
  p2pPort: string;
  /** Each `--p2p-host` given (none: DEFAULT_P2P_HOST). */
  p2pHost?: string[];
  p2pAnnounce?: string;
  rpcPort: string;
  rpcHost: string;
  validator?: boolean;
  allowFreshSigner?: boolean;
  trustedCheckpoint?: string;
  devChips: string;
  devChipOffset: string;
  devMinerAccount: string;
}

export function startCommand(): Command {
  return withVerifyOptions(withMempoolOptions(new Command('start')))
    .description('run a node of a network: consensus with its peers, block sync and RPC')
    .requiredOption('--genesis <file>', 'the genesis file of the chain')
    .option('--peers <multiaddrs>', 'comma-separated peers, /ip4/<ip>/tcp/<port>/p2p/<peer id>')
    .option('--p2p-port <port>', 'peer-to-peer TCP port (0 picks a free one)', '26656')
    .option(
      '--p2p-host <ip>',
      `peer-to-peer listen address, IPv4 or IPv6 (0.0.0.0, ::, ::1); give it twice to listen on both (--p2p-host 0.0.0.0 --p2p-host ::) (default: ${DEFAULT_P2P_HOST})`,
      collect,
    )
    .option(
      '--p2p-announce <multiaddrs>',
      'comma-separated addresses announced to peers instead of the listen address, /ip4/<ip>/tcp/<port> or /ip6/<ip>/tcp/<port> (default: the listen addresses, less private, loopback and link-local ones a 0.0.0.0 or :: listen expands to)',
    )
    .option('--rpc-port <port>', 'RPC port (0 picks a free one)', '3030')
    .option('--rpc-host <host>', 'RPC listen address', '127.0.0.1')
    .option('--validator', "vote with this home's validator key (it must be in the validator set)")
    .option(
      '--allow-fresh-signer',
      'with --validator: start a fresh signer although data/privval.json is missing and this key signed recent blocks here (docs/operators.md)',
    )
    .option(
      '--trusted-checkpoint <height:hash>',
      'a block height and hash from a source you trust: no other block at that height is accepted (weak subjectivity, docs/operators.md)',
    )
    .option('--dev-chips <n>', 'dev chains only: software dev chips driven by a miner agent', '0')
    .option('--dev-chip-offset <n>', 'dev chains only: index of the first dev chip key', '0')
    .option('--dev-miner-account <n>', 'dev chains only: dev account that owns the chips', '9')
    .action(async (opts: StartOptions & MempoolFlags & VerifyFlags, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const home = ctx.home;
      const keys = loadHome(home);
      // The chain and the signer's state (privval.json: the last height, round and step the
      // validator key signed, which keeps it from signing twice) lie in data/: held to the home's
      // rule before the node opens them, made 0700 when it is not there (BAD_HOME).
      makeHome(join(home, 'data'), 'data folder');
      if (!existsSync(opts.genesis))
        throw new UncError('BAD_GENESIS', `genesis file ${opts.genesis} does not exist`);
      let genesis: unknown;
      try {
        genesis = JSON.parse(readFileSync(opts.genesis, 'utf8'));
      } catch (err) {
        throw new UncError('BAD_GENESIS', `${opts.genesis} is not valid JSON: ${(err as Error).message}`);
      }
      const peers = peerList(opts.peers);
      const announce = announceList(opts.p2pAnnounce);
      const p2pPort = portOption(opts.p2pPort, 'p2p-port');
      const listen = p2pListenAddresses(opts.p2pHost, p2pPort);
      const rpcPort = portOption(opts.rpcPort, 'rpc-port');
      const chipCount = countOption(opts.devChips, 'dev-chips', 0, 1000);
      const chipOffset = countOption(opts.devChipOffset, 'dev-chip-offset', 0, 1_000_000);
      const minerAccount = countOption(opts.devMinerAccount, 'dev-miner-account', 0, 9);
      if (chipCount > 0) refuseDevChipsOffDevChain((genesis as { chainId?: unknown } | null)?.chainId);
      const logger = createLogger(keys.moniker);
      const configPath = join(home, 'config.json');
      const recorded = existsSync(configPath)
        ? (JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>)
        : {};
      const rpcLimits = rpcLimitsOf(recorded, configPath);
      const consensus = consensusOptionsOf(recorded, configPath);
      const trustedCheckpoint = trustedCheckpointOf(opts.trustedCheckpoint, recorded, configPath);
      const verifyThreads = verifyThreadsOf(opts, process.env, recorded, configPath);
      let connections: ReturnType<typeof parseConnectionLimits>;
      try {
        connections = parseConnectionLimits(recorded.p2p);
      } catch (err) {
        throw new UncError('BAD_CONFIG', `${configPath}: ${(err as Error).message}`);
      }

      // From here to the ready lines a signal stops the start-up at its next step (shutdown.ts):
      // it killed the process outright, in the middle of opening the database or starting libp2p.
      const shutdown = new Shutdown(logger).install();
      let node!: UncNode;
      if (
        !(await shutdown.startUp(async () => {
          node = await shutdown.step(() =>
            UncNode.start({
              dataDir: join(home, 'data'),
              genesis,
              ...(opts.validator ? { validatorSeed: keys.validatorSeed } : {}),
              ...(opts.allowFreshSigner ? { allowFreshSigner: true } : {}),
              ...(trustedCheckpoint ? { trustedCheckpoint } : {}),
              rpcHost: opts.rpcHost,
              rpcPort,
              rpc: rpcLimits,
              mempool: mempoolOptions(opts),
              ...(verifyThreads !== undefined ? { verifyPool: { threads: verifyThreads } } : {}),
              ...consensus,
              logger,
              signal: shutdown.signal,
              network: (handlers, chain, metrics) =>
                startNetwork({
                  listen,
                  bootstrap: peers,
                  ...(announce.length > 0 ? { announce } : {}),
                  nodeKey: keys.nodeKey,
                  chainId: chain.genesis.chainId,
                  genesisHash: chain.genesisHash,
                  handlers,
                  connections,
                  logger: logger.child('p2p'),
                  metrics,
                }),
            }).then((started) => {
              // In the step: a signal during the start finds it added and stops it.
              shutdown.add('node', () => started.stop());
              return started;
            }),
          );
        }))
      )
        return;

      const chips: ChipSigner[] = Array.from({ length: chipCount }, (_, i) => {
        const k = devChipKey(chipOffset + i);
        return new DevSoftSigner(k.seed, DEV_MODELS[(chipOffset + i) % DEV_MODELS.length]!.modelId, k.name);
      });
      writeFileWhole(configPath, `${JSON.stringify({ ...recorded, node: node.rpcUrl }, null, 2)}\n`, 0o644);

      const network = node.network!;
      const summary = {
        moniker: keys.moniker,
        chainId: node.chain.genesis.chainId,
        rpc: node.rpcUrl,
        peerId: network.peerId,
        listen: network.listenAddrs,
        validator: node.validator ? Buffer.from(node.validator.publicKey).toString('hex') : null,
        height: Number(node.chain.height),
        devChips: chips.length,
        verifyThreads: node.verifyPool.threads,
        pid: process.pid,
      };
      const miner = new MinerAgent({
        nodeUrl: node.rpcUrl,
        ownerSeed: devKey(minerAccount).seed,
        chips,
        statusPort: 0,
        // Kept across restarts as `unc miner start` keeps it: a restart must not give every chip its
        // urgent-fee budget again.
        urgentFeeFile: join(home, URGENT_FEE_FILE),
        logger: logger.child('miner'),
      });
      // Started after the ready lines, not awaited: a stop meanwhile stops its start (agent.ts).
      shutdown.add('miner agent', () => miner.stop());

      // A node that starts behind its peers syncs before it joins consensus: show how far it is.
      const bar = progressBar('syncing blocks');
      let wasSyncing = false;
      const syncWatch = setInterval(() => {
        const p = node.driver.syncProgress;
        if (p) {
          wasSyncing = true;
          bar.update(
            Number(p.height),
            Number(p.target),
            p.etaSeconds,
            `${p.blocksPerSecond.toFixed(0)} blocks/s`,
          );
        } else if (wasSyncing) {
          wasSyncing = false;
          bar.done(`synced to height ${node.chain.height}; following consensus`);
        }
      }, 250);
      syncWatch.unref();
      shutdown.add('sync progress', async () => clearInterval(syncWatch));

      ctx.print(summary, () =>
        [
          `UtilityNet node "${keys.moniker}" on ${summary.chainId} (height ${summary.height})`,
          `  RPC         ${summary.rpc}`,
          `  Peer id     ${summary.peerId}`,
          ...summary.listen.map((a) => `  Listen      ${a}`),
          `  Role        ${summary.validator ? `validator ${summary.validator}` : 'follower (no validator key)'}`,
          `  Peers       ${peers.length > 0 ? peers.join(', ') : 'none given'}`,
          ...(chips.length > 0 ? [`  Dev miner   ${chips.length} software chips (registering)`] : []),
          `  Verify      ${summary.verifyThreads} signature-check threads`,
          `  PID         ${process.pid}`,
        ].join('\n'),
      );

      // After the summary: registering chips waits for blocks, and operators want the URLs first.
      if (chips.length > 0) {
        miner.start().catch((err) => {
          // A stop during its start ends it with an error that is no news.
          if (!shutdown.requested)
            logger.error('miner agent failed to start', { error: (err as Error).message });
        });
      }
    });
}

/**
 * `--dev-chips` runs a miner agent whose owner is a public dev account (dev9 by default) and whose
 * chips are public dev keys: the seeds of both are printed by `unc dev` for anyone. Only a dev
 * chain (`unc-dev-…`, the rule of the keyring's dev keys) may see them sign: started with a real
 * network's genesis, the node sent that network transactions signed with a key anyone holds, and
 * anyone could answer for its chips. Refused (NOT_A_DEV_CHAIN) before anything starts.
 */
export function refuseDevChipsOffDevChain(chainId: unknown): void {
  if (isDevChainId(chainId)) return;
  throw new UncError(
    'NOT_A_DEV_CHAIN',
    `--dev-chips drives software chips whose keys, and their owner's, are public: only on a dev chain (unc-dev-…), not on ${JSON.stringify(chainId)}`,
  );
}
