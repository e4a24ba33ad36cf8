import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatUnc, parseUnc, UncError } from '@unc/core';
import {
  type ChipSigner,
  type ChipStatus,
  DevSoftSigner,
  ensureProviderCertificate,
  killSandboxesNow,
  MinerAgent,
  URGENT_FEE_FILE,
} from '@unc/miner';
import { createLogger, DEV_MODELS, devChipKey, removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { Command } from 'commander';
import { tpmChipFromSpec } from '../chips.js';
import { ctxOf, makeHome } from '../context.js';
import { JOB_ISOLATION_HELP, jobIsolationOf } from '../job-isolation-options.js';
import { once, Shutdown } from '../shutdown.js';
import { refuseDevChipsOffDevChain } from './start.js';

/** What `unc miner init` records in `<home>/miner.json`. */
export interface MinerConfig {
  from?: string;
  tpmChips?: string[];
  devChips?: number;
}

/**
 * `<home>/miner.json`, or nothing recorded when there is none. It is replaced whole
 * (writeFileWhole): the temporary files of a write a kill interrupted are removed here, where
 * `unc miner start` reads it.
 */
export function readMinerConfig(home: string): MinerConfig {
  const path = join(home, 'miner.json');
  removeWholeLeftovers(path);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as MinerConfig) : {};
}

export function minerCommand(): Command {
  const miner = new Command('miner').description('the miner agent that keeps chips registered and answering');

  miner
    .command('status')
    .description("each chip's state, next slot, recent answers and earnings, from the running agent")
    .option('--agent <url>', 'the agent status URL (default: the one recorded in the home)')
    .action(async (opts: { agent?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      let url = opts.agent;
      const config = join(ctx.home, 'config.json');
      if (!url && existsSync(config))
        url = (JSON.parse(readFileSync(config, 'utf8')) as { miner?: string }).miner ?? undefined;
      if (!url) throw new UncError('NO_AGENT', `no miner agent recorded in ${config}; pass --agent <url>`);
      let status: { owner: string; node: string; height: number; chips: ChipStatus[] };
      try {
        status = (await (
          await fetch(`${url.replace(/\/$/, '')}/status`, { signal: AbortSignal.timeout(10_000) })
        ).json()) as typeof status;
      } catch (err) {
        throw new UncError(
          'AGENT_UNREACHABLE',
          `cannot reach the miner agent at ${url}: ${(err as Error).message}`,
        );
      }
      ctx.print(status, () =>
        [
          `miner agent for ${status.owner} on ${status.node} (height ${status.height})`,
          ...status.chips.map((c) =>
            [
              `  ${c.label} ${c.chipId.slice(0, 16)}… ${c.profile}: ${c.registered ? (c.online ? 'online' : 'OFFLINE') : 'not registered'}, answered ${c.answered}, missed ${c.missed}, earned ${formatUnc(BigInt(c.rewardsEarned))} UNC`,
              ...c.open.map(
                (o) =>
                  `      open challenge: block ${o.height} (epoch ${o.epoch} #${o.slot}), answer by ${o.windowEnd}`,
              ),
              ...c.recent.slice(-3).map((r) => `      slot ${r.epoch}:${r.slot} at ${r.height}: ${r.result}`),
              c.lastError ? `      last error: ${c.lastError}` : '',
            ]
              .filter(Boolean)
              .join('\n'),
          ),
        ].join('\n'),
      );
    });

  miner
    .command('init')
    .description('record which key owns the chips and which chips to drive, for unc miner start')
    .requiredOption('--from <key>', 'keyring key that owns the chips and pays for registration')
    .option('--tpm-chip <endpoint=dir>', 'a provisioned TPM chip (repeatable)', collect, [])
    .option('--dev-chips <n>', 'software dev chips (dev chains only)', '0')
    .action((opts: { from: string; tpmChip: string[]; devChips: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      ctx.keyring().info(opts.from);
      for (const spec of opts.tpmChip) tpmChipFromSpec(spec);
      const config = { from: opts.from, tpmChips: opts.tpmChip, devChips: devChipCount(opts.devChips) };
      makeHome(ctx.home);
      // The provider's TLS key goes in tls/: held to the home's rule before anything is written.
      makeHome(join(ctx.home, 'tls'), 'TLS folder');
      // Whole or not at all, like config.json: written in place, a crash or a full disk left it
      // cut (`unc miner start` could not read it), and a link planted at it was written through.
      writeFileWhole(join(ctx.home, 'miner.json'), `${JSON.stringify(config, null, 2)}\n`, 0o644);
      // The provider API's TLS key and self-signed certificate; the offer pins its fingerprint.
      const tls = ensureProviderCertificate(join(ctx.home, 'tls'));
      ctx.print({ ...config, tlsFingerprint: tls.fingerprint }, () =>
        [
          `miner configured in ${join(ctx.home, 'miner.json')}: ${opts.tpmChip.length} TPM chip(s), ${config.devChips} dev chip(s), owner ${opts.from}`,
          `provider TLS certificate ${join(ctx.home, 'tls', 'provider.crt')}${tls.created ? ' (new)' : ''}`,
          `  SHA-256 fingerprint ${tls.fingerprint} (unc market offer create pins it)`,
        ].join('\n'),
      );
    });

  miner
    .command('start')
    .description('run the miner agent: register the chips and answer every challenge slot')
    .option('--from <key>', 'keyring key that owns the chips (default: from unc miner init)')
    .option(
      '--operator-for <owner>',
      "--from is the heartbeat operator of this owner (unc chip set-operator): answer for the owner's registered chips with it, register nothing, keep no offer; the owner's key stays off this host",
    )
    .option(
      '--tpm-chip <endpoint=dir>',
      'a provisioned TPM chip, e.g. 127.0.0.1:2321=./chip1 (repeatable)',
      collect,
      [],
    )
    .option('--tpm <device>', 'one chip on a TPM device (e.g. /dev/tpmrm0), with --chip-dir')
    .option('--tpm-tcp <host:port>', 'one chip on a TPM simulator socket (swtpm), with --chip-dir')
    .option('--chip-dir <dir>', 'the provisioned directory of the --tpm chip')
    .option('--dev-chips <n>', 'software dev chips (dev chains only)')
    .option('--status-port <port>', 'port of the /status and /metrics endpoint on 127.0.0.1', '0')
    .option('--provider-port <port>', "serve renters' jobs (provider API) on this port (0: a free one)")
    .option('--provider-host <host>', 'address of the provider API', '127.0.0.1')
    .option(
      '--no-provider-tls',
      'serve the provider API as plain http (dev chains, or behind a reverse proxy that terminates TLS)',
    )
    .option('--execution-provider <ep>', 'ONNX Runtime execution provider for jobs: cpu or cuda', 'cpu')
    .option('--job-timeout <seconds>', 'wall-clock limit of one job; its process is killed past it', '60')
    .option('--job-memory <MiB>', 'memory limit of one job process; it is killed past it', '4096')
    .option('--job-isolation <mode>', JOB_ISOLATION_HELP)
    .option(
      '--job-concurrency <n>',
      'jobs run at once, each in its own process (CPU jobs: at most the cores)',
      '2',
    )
    .option(
      '--max-heartbeat-fee <UNC>',
      'the most one heartbeat may pay, only for answers due within 3 blocks that went unincluded fee-free (0: never)',
      '0.001',
    )
    .option(
      '--urgent-fee-budget <UNC>',
      "the most urgent heartbeat fees may cost per chip in any hour of this machine's clock (some 4 challenges at one-second blocks), whatever forces them (e.g. a relay landing copies of its answers first); --max-heartbeat-fee bounds one heartbeat only; what was spent is kept in <home>/urgent-fees.json across restarts",
      '0.001',
    )
    .option('--password-file <file>', "the owner key's password")
    .action(
      async (
        opts: {
          from?: string;
          operatorFor?: string;
          tpmChip: string[];
          tpm?: string;
          tpmTcp?: string;
          chipDir?: string;
          devChips?: string;
          statusPort: string;
          providerPort?: string;
          providerHost: string;
          providerTls: boolean;
          executionProvider: string;
          jobTimeout: string;
          jobMemory: string;
          jobIsolation?: string;
          jobConcurrency: string;
          passwordFile?: string;
          maxHeartbeatFee: string;
          urgentFeeBudget: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const saved = readMinerConfig(ctx.home);
        const from = opts.from ?? saved.from;
        if (!from) throw new UncError('NO_OWNER', 'no owner key: pass --from <key> or run unc miner init');
        const operatorFor = opts.operatorFor === undefined ? undefined : ctx.address(opts.operatorFor);
        if (operatorFor !== undefined && operatorFor === ctx.address(from))
          throw new UncError(
            'BAD_ARGUMENT',
            '--operator-for names the owner; --from must be its operator key',
          );
        const single = opts.tpm ?? opts.tpmTcp;
        const specs = opts.tpmChip.length > 0 || single ? [...opts.tpmChip] : (saved.tpmChips ?? []);
        if (single) {
          if (!opts.chipDir)
            throw new UncError(
              'BAD_ARGUMENT',
              '--tpm/--tpm-tcp need --chip-dir <dir> (from unc vendor provision)',
            );
          specs.push(`${single}=${opts.chipDir}`);
        }
        const devChips = opts.devChips !== undefined ? devChipCount(opts.devChips) : (saved.devChips ?? 0);
        const statusPort = Number(opts.statusPort);
        if (!Number.isInteger(statusPort) || statusPort < 0 || statusPort > 65535)
          throw new UncError('BAD_PORT', '--status-port must be 0…65535');
        const providerPort = opts.providerPort === undefined ? undefined : Number(opts.providerPort);
        if (
          providerPort !== undefined &&
          (!Number.isInteger(providerPort) || providerPort < 0 || providerPort > 65535)
        )
          throw new UncError('BAD_PORT', '--provider-port must be 0…65535');
        if (opts.executionProvider !== 'cpu' && opts.executionProvider !== 'cuda')
          throw new UncError('BAD_ARGUMENT', '--execution-provider must be cpu or cuda');
        const maxHeartbeatFee = parseUnc(opts.maxHeartbeatFee);
        const urgentFeeBudget = parseUnc(opts.urgentFeeBudget);
        const jobTimeout = Number(opts.jobTimeout);
        if (!Number.isFinite(jobTimeout) || jobTimeout <= 0)
          throw new UncError('BAD_ARGUMENT', '--job-timeout must be a positive number of seconds');
        const jobMemory = Number(opts.jobMemory);
        if (!Number.isInteger(jobMemory) || jobMemory < 1024)
          throw new UncError('BAD_ARGUMENT', '--job-memory must be an integer number of MiB, at least 1024');
        const jobIsolation = jobIsolationOf(opts, process.env, ctx.config(), join(ctx.home, 'config.json'));
        const jobConcurrency = Number(opts.jobConcurrency);
        if (!Number.isInteger(jobConcurrency) || jobConcurrency < 1 || jobConcurrency > 64)
          throw new UncError('BAD_ARGUMENT', '--job-concurrency must be 1…64');
        const signers: ChipSigner[] = specs.map((spec) => tpmChipFromSpec(spec));
        for (let i = 0; i < devChips; i++) {
          const k = devChipKey(i);
          signers.push(new DevSoftSigner(k.seed, DEV_MODELS[i % DEV_MODELS.length]!.modelId, k.name));
        }
        if (signers.length === 0)
          throw new UncError('NO_CHIPS', 'no chips to drive: pass --tpm-chip or --dev-chips');
        if (providerPort !== undefined) {
          // The provider's folders (models renters uploaded, the used-nonce log that refuses a
          // replayed request, the TLS key): held to the home's rule, made 0700 when not there.
          makeHome(join(ctx.home, 'models'), 'models folder');
          makeHome(join(ctx.home, 'provider'), 'provider folder');
          if (opts.providerTls) makeHome(join(ctx.home, 'tls'), 'TLS folder');
        }
        const logger = createLogger('miner');
        // Before the first await: a signal while the node is asked (or a password) exits at once
        // (nothing is taken yet); during the agent's start it stops it (shutdown.ts).
        const shutdown = new Shutdown(logger).install();
        const client = ctx.client();
        const status = await client.status();
        if (devChips > 0) refuseDevChipsOffDevChain(status.chainId);
        const seed = await ctx.unlockKey(from, status.chainId, opts);
        const agent = new MinerAgent({
          nodeUrl: ctx.nodeUrl,
          ownerSeed: seed,
          ...(operatorFor !== undefined ? { operatorFor } : {}),
          chainId: status.chainId,
          chips: signers,
          statusPort,
          maxHeartbeatFee,
          urgentFeeBudget,
          // Kept across restarts: a restart must not give every chip its budget again.
          urgentFeeFile: join(ctx.home, URGENT_FEE_FILE),
          ...(providerPort !== undefined
            ? {
                provider: {
                  port: providerPort,
                  host: opts.providerHost,
                  modelDir: join(ctx.home, 'models'),
                  stateDir: join(ctx.home, 'provider'),
                  executionProvider: opts.executionProvider,
                  ...(opts.providerTls ? { tls: { dir: join(ctx.home, 'tls') } } : {}),
                  jobTimeoutMs: Math.round(jobTimeout * 1000),
                  jobMemoryBytes: jobMemory * 1024 * 1024,
                  jobIsolation,
                  concurrency: jobConcurrency,
                },
              }
            : {}),
          logger,
        });
        // Registering the chips waits for blocks: a signal meanwhile stops the agent at once (a stop
        // during its start takes nothing and starts nothing, agent.ts).
        const stopAgent = once(() => agent.stop());
        if (
          !(await shutdown.startUp(async () => {
            await shutdown.step(() => agent.start(), stopAgent);
            shutdown.add('miner agent', stopAgent, killSandboxesNow);
          }))
        )
          return;
        const config = join(ctx.home, 'config.json');
        const current = existsSync(config)
          ? (JSON.parse(readFileSync(config, 'utf8')) as Record<string, unknown>)
          : {};
        writeFileWhole(config, `${JSON.stringify({ ...current, miner: agent.statusUrl }, null, 2)}\n`, 0o644);
        ctx.print(
          {
            status: agent.statusUrl,
            provider: agent.providerUrl,
            tlsFingerprint: agent.providerTlsFingerprint,
            chips: signers.map((s) => s.label),
          },
          () =>
            [
              `miner agent running: ${signers.length} chip(s)`,
              `  status  ${agent.statusUrl}/status`,
              `  metrics ${agent.statusUrl}/metrics`,
              ...(agent.providerUrl ? [`  jobs    ${agent.providerUrl}/v1/health`] : []),
              ...(agent.providerTlsFingerprint ? [`  TLS     SHA-256 ${agent.providerTlsFingerprint}`] : []),
            ].join('\n'),
        );
      },
    );

  return miner;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function devChipCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 1000)
    throw new UncError('BAD_ARGUMENT', `invalid --dev-chips "${text}": 0…1000`);
  return n;
}
