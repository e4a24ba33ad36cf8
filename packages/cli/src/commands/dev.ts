import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeAddress, formatUnc, parseUnc, UncError } from '@unc/core';
import {
  type ChipSigner,
  createVendorCa,
  DevSoftSigner,
  killSandboxesNow,
  loadVendorCa,
  lockUrgentFeeFile,
  MinerAgent,
  provisionChip,
  Swtpm,
  Tpm,
  URGENT_FEE_FILE,
  type VendorCa,
  writeVendorCa,
} from '@unc/miner';
import {
  createLogger,
  DEV_MINER_ACCOUNT,
  DEV_MNEMONIC,
  DEV_MODELS,
  devAccounts,
  devChipKey,
  devGenesisJson,
  devKey,
  devValidator,
  removeWholeLeftovers,
  UncNode,
  writeFileWhole,
} from '@unc/node';
import { Command } from 'commander';
import { tpmChipFromDir } from '../chips.js';
import { countOption, ctxOf, DEFAULT_HOME, DEFAULT_NODE, makeHome, portOption } from '../context.js';
import { type JobIsolationFlags, jobIsolationOf, withJobIsolationOption } from '../job-isolation-options.js';
import { type MempoolFlags, mempoolOptions, withMempoolOptions } from '../mempool-options.js';
import { spinner } from '../progress.js';
import { once, Shutdown } from '../shutdown.js';
import { type VerifyFlags, verifyThreadsOf, withVerifyOptions } from '../verify-options.js';
import { rpcLimitsOf } from './start.js';

const DEV_TPM_VENDOR = 'dev-tpm';
const DEV_UNLIMITED_ADDRESSES = ['127.0.0.1', '::1'];
const DEV_TPM_MODEL = 'swtpm';

/** The dev TPM vendor's CA, made once per home, whose root the dev genesis trusts. */
async function devTpmVendor(home: string): Promise<VendorCa> {
  const dir = join(home, 'vendor', DEV_TPM_VENDOR);
  // Its root key signs the dev TPM chips' certificates and the dev genesis trusts its root.
  makeHome(dir, 'vendor folder');
  if (existsSync(join(dir, 'vendor.json'))) return loadVendorCa(dir);
  const ca = createVendorCa({
    vendorId: DEV_TPM_VENDOR,
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2036-01-01T00:00:00Z'),
  });
  await writeVendorCa(ca, dir);
  return ca;
}

function blockTime(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 10 || n > 600_000) {
    throw new UncError('BAD_BLOCK_TIME', `invalid block time "${text}": milliseconds, 10…600000`);
  }
  return n;
}

export function devCommand(): Command {
  return withJobIsolationOption(withVerifyOptions(withMempoolOptions(new Command('dev'))))
    .description('run a local single-validator dev chain with funded dev accounts')
    .option('--rpc-port <port>', 'RPC port (0 picks a free one)', '3030')
    .option('--rpc-host <host>', 'RPC listen address', '127.0.0.1')
    .option('--block-time <ms>', 'milliseconds between blocks', '1000')
    .option('--reset', 'delete the chain data and start from a fresh genesis')
    .option('--chips <n>', 'software dev chips driven by the dev miner (dev9 owns them)', '4')
    .option(
      '--tpm-chips <n>',
      'chips backed by real software TPMs (swtpm), provisioned by a dev TPM vendor',
      '0',
    )
    .option('--epoch-blocks <n>', 'blocks per POCI epoch (fresh genesis only)', '60')
    .option(
      '--provider-port <port>',
      "the dev miner's provider API for renters' jobs (default: RPC port + 1, or a free port with --rpc-port 0)",
    )
    .option('--offer-price <unc>', 'price per hour of the dev chips offered for rent', '2')
    .option('--no-offer', 'do not put the dev chips on the market (the provider API still runs)')
    .option(
      '--provider-tls',
      'serve the provider API over TLS with a certificate in <home>/provider/tls, pinned by the dev offer (default: plain http, which renters accept on dev chains only)',
    )
    .action(
      async (
        opts: {
          rpcPort: string;
          rpcHost: string;
          blockTime: string;
          reset?: boolean;
          chips: string;
          tpmChips: string;
          epochBlocks: string;
          providerPort?: string;
          offerPrice: string;
          offer: boolean;
          providerTls?: boolean;
        } & MempoolFlags &
          VerifyFlags &
          JobIsolationFlags,
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const logger = createLogger('dev');
        const rpcPort = portOption(opts.rpcPort, 'rpc-port');
        const blockTimeMs = blockTime(opts.blockTime);
        const chipCount = countOption(opts.chips, 'chips', 0, 1000);
        const tpmChipCount = countOption(opts.tpmChips, 'tpm-chips', 0, 16);
        const epochBlocks = countOption(opts.epochBlocks, 'epoch-blocks', 24, 1_000_000);
        const providerPort =
          opts.providerPort !== undefined
            ? portOption(opts.providerPort, 'provider-port')
            : rpcPort === 0
              ? 0
              : rpcPort + 1;
        const offerPrice = parseUnc(opts.offerPrice);
        // Before --reset removes anything: a bad value (a flag, a config.json setting) changes nothing.
        const configPath = join(ctx.home, 'config.json');
        // --reset leaves config.json: what it says now is what the node gets.
        const recorded = ctx.config();
        const verifyThreads = verifyThreadsOf(opts, process.env, recorded, configPath);
        const jobIsolation = jobIsolationOf(opts, process.env, recorded, configPath);
        const mempool = mempoolOptions(opts);
        // A dev chain serves its own explorer, CLI and miner on this machine: per-address limits would
        // only throttle them. Other loopback addresses (127.0.0.2, …) stay limited, and the home's
        // config.json `rpc.unlimitedAddresses` replaces this list.
        const rpcLimits = {
          unlimitedAddresses: DEV_UNLIMITED_ADDRESSES,
          ...rpcLimitsOf(recorded, configPath),
        };
        // Before anything is written or started: a signal from here on stops cleanly (shutdown.ts).
        const shutdown = new Shutdown(logger).install();
        const home = ctx.home;
        const dataDir = join(home, 'data');
        const genesisPath = join(home, 'genesis.json');
        // The dev keys' names before --reset or anything else: refused at the keyring only after the
        // reset, a clash with a key of the user's had cost them the chain for nothing.
        ctx.keyring().checkDevKeys();
        if (opts.reset) {
          // The urgent-fee lock first: an agent still running on this home (another `unc dev`, a
          // `unc miner start`) refuses the reset (MINER_RUNNING) before anything is removed, its
          // record among them, which it would write back over the new chain's.
          const release = existsSync(home) ? lockUrgentFeeFile(join(home, URGENT_FEE_FILE)) : () => {};
          try {
            rmSync(dataDir, { recursive: true, force: true });
            rmSync(genesisPath, { force: true });
            rmSync(join(home, 'tpm'), { recursive: true, force: true });
            // The old chain's urgent-fee spending: kept, a record counting every chip spent held
            // the new chain's chips to no urgent fee for the hour.
            rmSync(join(home, URGENT_FEE_FILE), { force: true });
            // The old chain's lease records: the new chain repeats its lease ids (same chain id, same
            // counter), so a record kept would refuse (ENDPOINT_CHANGED) a new lease of that id.
            rmSync(join(home, 'leases'), { recursive: true, force: true });
            // The old chain's default gateway database (`unc gateway` without --db), for the same
            // reason: its lease rows refused the new chain's repeated ids (LEASE_ID_TAKEN, the lease
            // opened on chain and left unrecorded), and its fees counted against the new budget.
            rmSync(join(home, 'gateway'), { recursive: true, force: true });
          } finally {
            release();
          }
        }
        makeHome(home);
        // The folders of the home the node and the dev miner read as their own (the chain and the
        // signer's state, the provider's models, used nonces and TLS key, the TPM chips' state):
        // held to the home's rule before anything is written, made 0700 when they are not there.
        makeHome(dataDir, 'data folder');
        makeHome(join(home, 'provider'), 'provider folder');
        makeHome(join(home, 'provider', 'models'), 'models folder');
        if (opts.providerTls) makeHome(join(home, 'provider', 'tls'), 'TLS folder');
        for (let i = 0; i < tpmChipCount; i++) makeHome(join(home, 'tpm', `chip-${i}`), 'TPM chip folder');
        // Written kill-safe (each file whole, vendor.json last): a signal meanwhile exits at once.
        const devTpm = tpmChipCount > 0 ? await devTpmVendor(home) : null;
        removeWholeLeftovers(genesisPath);
        if (!existsSync(genesisPath)) {
          const extra = devTpm
            ? {
                vendors: [
                  {
                    id: DEV_TPM_VENDOR,
                    name: 'Dev TPM vendor (swtpm)',
                    profile: 'tpm2' as const,
                    roots: [devTpm.root.certificate],
                  },
                ],
                models: [
                  {
                    vendorId: DEV_TPM_VENDOR,
                    modelId: DEV_TPM_MODEL,
                    name: 'Software TPM 2.0 (swtpm)',
                    power: 1_000n,
                  },
                ],
              }
            : {};
          // Whole (writeFileWhole): cut in place by a kill or a full disk, every later start failed
          // to parse it until the chain was reset.
          writeFileWhole(
            genesisPath,
            `${JSON.stringify(devGenesisJson({ blockTimeMs, epochBlocks, ...extra }), null, 2)}\n`,
            0o644,
          );
        }
        const genesis = JSON.parse(readFileSync(genesisPath, 'utf8')) as Record<string, unknown>;
        if (devTpm && !(genesis.vendors as { id: string }[]).some((v) => v.id === DEV_TPM_VENDOR)) {
          throw new UncError(
            'NEEDS_RESET',
            'this dev chain was created without the dev TPM vendor: run with --reset to add TPM chips',
          );
        }
        const chainId = String(genesis.chainId);
        ctx.keyring().addDevKeys(chainId);
        const accounts = devAccounts();

        // The explorer built beside this CLI in the monorepo (npm run build builds it).
        const explorerDir = fileURLToPath(new URL('../../../../explorer/dist/', import.meta.url));
        // From here to the ready lines a signal stops the start-up at its next step (shutdown.ts):
        // it killed the process outright, its swtpm children left running.
        let node!: UncNode;
        let miner!: MinerAgent;
        const swtpms: Swtpm[] = [];
        const ready = await shutdown.startUp(async () => {
          node = await shutdown.step(() =>
            UncNode.start({
              rpc: rpcLimits,
              ...(existsSync(join(explorerDir, 'index.html')) ? { explorerDir } : {}),
              dataDir,
              genesis,
              validatorSeed: devValidator().seed,
              // A dev chain's one validator has no peers that could hold a vote it cast before a crash,
              // and its key is public: a lost privval.json is no reason to refuse (signer-guard.ts).
              allowFreshSigner: true,
              rpcHost: opts.rpcHost,
              rpcPort,
              blockTimeMs,
              mempool,
              ...(verifyThreads !== undefined ? { verifyPool: { threads: verifyThreads } } : {}),
              logger,
              signal: shutdown.signal,
            }).then((started) => {
              // In the step: a signal during the start finds it added and stops it.
              shutdown.add('node', () => started.stop());
              return started;
            }),
          );
          const chips: ChipSigner[] = Array.from({ length: chipCount }, (_, i) => {
            const k = devChipKey(i);
            return new DevSoftSigner(k.seed, DEV_MODELS[i % DEV_MODELS.length]!.modelId, k.name);
          });
          if (devTpm) {
            const progress = spinner(`starting ${tpmChipCount} software TPM chip(s)…`);
            for (let i = 0; i < tpmChipCount; i++) {
              progress.update(
                `TPM chip ${i + 1}/${tpmChipCount}: starting swtpm and provisioning its attestation key…`,
              );
              const tpmDir = join(home, 'tpm', `chip-${i}`);
              mkdirSync(join(tpmDir, 'state'), { recursive: true });
              const swtpm = await Swtpm.prepare({ stateDir: join(tpmDir, 'state'), keepState: true });
              // Before it is spawned: a third signal while it starts, not listening yet, kills it by
              // PID too (added once it listened, such a swtpm was left running).
              shutdown.add(
                'software TPM',
                () => swtpm.dispose(),
                () => swtpm.kill(),
              );
              swtpms.push(swtpm);
              await shutdown.step(() => swtpm.run());
              const certDir = join(tpmDir, 'cert');
              if (!existsSync(join(certDir, 'ak.cert.pem'))) {
                await shutdown.step(async () => {
                  const tpm = new Tpm(swtpm.transport());
                  try {
                    await tpm.startup('clear');
                    await provisionChip(tpm, devTpm, {
                      model: DEV_TPM_MODEL,
                      notBefore: new Date('2026-01-01T00:00:00Z'),
                      notAfter: new Date('2036-01-01T00:00:00Z'),
                      outDir: certDir,
                    });
                  } finally {
                    await tpm.close();
                  }
                });
              }
              chips.push(
                tpmChipFromDir(
                  { kind: 'tcp', host: '127.0.0.1', port: swtpm.port },
                  certDir,
                  `tpm-chip-${i}`,
                ),
              );
            }
            progress.done();
          }
          miner = new MinerAgent({
            nodeUrl: node.rpcUrl,
            ownerSeed: devKey(DEV_MINER_ACCOUNT).seed,
            chips,
            statusPort: 0,
            // Renters lease the dev chips through the same market and provider API as anywhere else.
            provider: {
              port: providerPort,
              modelDir: join(home, 'provider', 'models'),
              ...(opts.providerTls ? { tls: { dir: join(home, 'provider', 'tls') } } : {}),
              stateDir: join(home, 'provider'),
              jobIsolation,
            },
            ...(opts.offer
              ? {
                  offer: {
                    pricePerHour: offerPrice,
                    // Pay as you go: a renter trying the dev chain deposits as little as it likes.
                    minHours: 0,
                    maxHours: 24,
                    noticeMs: 10n * 60_000n,
                    attributes: { region: 'local', runtimes: ['onnx', 'ocr'] },
                  },
                }
              : {}),
            // Kept across restarts as `unc miner start` keeps it: a restart must not give every chip
            // its urgent-fee budget again.
            urgentFeeFile: join(home, URGENT_FEE_FILE),
            logger: logger.child('miner'),
          });
          const stopMiner = once(() => miner.stop());
          // A forced exit kills the job sandboxes at once: one forced out while it starts waits for good.
          shutdown.add('miner agent', stopMiner, killSandboxesNow);
          // Registering the chips waits for blocks: a signal meanwhile stops the agent at once
          // (a stop during its start takes nothing and starts nothing).
          if (chips.length > 0) await shutdown.step(() => miner.start(), stopMiner);
        });
        if (!ready) return;
        // The RPC limits an operator wrote there are kept; the URLs are this run's.
        // What the user set with `unc config set` (output, explorer) is kept too.
        writeFileWhole(
          configPath,
          `${JSON.stringify({ ...recorded, node: node.rpcUrl, miner: miner.statusUrl }, null, 2)}\n`,
          0o644,
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
          explorer: node.explorerUrl,
          ws: node.wsUrl,
          home,
          dataDir,
          blockTimeMs,
          height: Number(node.chain.height),
          verifyThreads: node.verifyPool.threads,
          miner: { status: miner.statusUrl, chips: chipCount, tpmChips: tpmChipCount },
          provider: miner.providerUrl,
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
            `  Explorer    ${node.explorerUrl ?? 'not built (npm run build)'}`,
            `  Data dir    ${dataDir}`,
            `  Block time  ${blockTimeMs} ms`,
            `  Verify      ${summary.verifyThreads} signature-check threads`,
            `  Provider    ${miner.providerUrl ?? 'none (no chips)'}   (renters' jobs; the chips are offered at ${formatUnc(offerPrice)} UNC/h)`,
            `  Dev miner   ${chipCount} software chips${tpmChipCount ? ` and ${tpmChipCount} swtpm chips (pids ${swtpms.map((t) => t.pid).join(', ')})` : ''} owned by dev${DEV_MINER_ACCOUNT}${miner.statusUrl ? ` (status ${miner.statusUrl}/status)` : ''}`,
            '',
            'Dev accounts (keyring "test": unencrypted, usable only on this dev chain):',
            ...summary.accounts.map(
              (a) => `  ${a.name.padEnd(5)} ${a.address}  ${formatUnc(BigInt(a.balance)).padStart(12)} UNC`,
            ),
            '',
            `Dev mnemonic (public, never use for real funds): ${DEV_MNEMONIC}`,
            '',
            ...devHints(summary.accounts[1]!.address, home, node.rpcUrl),
          ].join('\n'),
        );
      },
    );
}

/**
 * The commands `unc dev` suggests, with the --home and --node it runs with, so that they work as
 * printed from another shell (a home or port other than the defaults would otherwise be missed).
 */
export function devHints(dev1: string, home: string, nodeUrl: string): string[] {
  const flags = [
    ...(resolve(home) === resolve(DEFAULT_HOME) ? [] : [`--home ${home}`]),
    ...(nodeUrl === DEFAULT_NODE ? [] : [`--node ${nodeUrl}`]),
  ].join(' ');
  const unc = `npx unc${flags ? ` ${flags}` : ''}`;
  return [
    `Try: ${unc} tx transfer --from dev0 --to ${dev1} --amount 12.5 -y`,
    `     ${unc} status`,
    `     ${unc} chip list`,
    `     ${unc} market offers`,
    `     ${unc} market lease <offer id prefix> --hours 1 --from dev1`,
    `     ${unc} job ocr --lease <lease id prefix> <image.png> --from dev1`,
  ];
}
