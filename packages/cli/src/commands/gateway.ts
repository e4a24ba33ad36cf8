/**
 * `unc gateway`: the elastic inference gateway (@unc/gateway, docs/gateway.md). `start` runs it;
 * `jobs` and `receipts` read its database, so a renter can audit every answer with or without the
 * gateway running; `forget-opening` removes a lease opening it would count against its budget for
 * ever (an expiry height a hostile node inflated), on its owner's word.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { formatUnc, parseUnc, UncError } from '@unc/core';
import { Gateway, type GatewayModel, GatewayStore, isLoopbackHost, jobView } from '@unc/gateway';
import { createLogger, readSecretFile } from '@unc/node';
import { Command } from 'commander';
import { type Context, checkHome, countOption, ctxOf, portOption } from '../context.js';
import { confirm } from '../send.js';
import { Shutdown } from '../shutdown.js';
import { DEFAULT_MAX_AGE_S, MAX_AGE_HELP, requireProveFor, trustAnchorOf } from './query.js';

/**
 * --db, else the home's gateway/gateway.db, whose folder is held to the home's rule (BAD_HOME): the
 * database holds every job's input and result, the receipts and the leases the budget counts.
 */
function dbPathOf(ctx: Context, db?: string): string {
  if (db !== undefined) return db;
  const dir = join(ctx.home, 'gateway');
  checkHome(dir, 'gateway folder');
  return join(dir, 'gateway.db');
}

function msOption(text: string, name: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n <= 0 || n > 86_400)
    throw new UncError('BAD_ARGUMENT', `invalid --${name} "${text}": seconds, more than 0, at most 86400`);
  return Math.round(n * 1000);
}

/** Whole days, 0 (for ever) up to 10 years, as ms. */
function daysOption(text: string, name: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 3_650)
    throw new UncError('BAD_ARGUMENT', `invalid --${name} "${text}": whole days, 0 (keep for ever) to 3650`);
  return n * 86_400_000;
}

function modelsOption(text: string): GatewayModel[] {
  const models: GatewayModel[] = [];
  for (const item of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (item === 'ocr') {
      models.push({ name: 'ocr' });
      continue;
    }
    if (!item.endsWith('.onnx'))
      throw new UncError('BAD_ARGUMENT', `--models: "${item}" is neither ocr nor an .onnx file`);
    if (!existsSync(item)) throw new UncError('BAD_ARGUMENT', `--models: ${item} does not exist`);
    const name = basename(item, '.onnx');
    if (models.some((m) => m.name === name))
      throw new UncError('BAD_ARGUMENT', `--models: two models are named "${name}"`);
    models.push({ name, onnx: new Uint8Array(readFileSync(item)) });
  }
  if (models.length === 0)
    throw new UncError('BAD_ARGUMENT', '--models: name at least one model (ocr, or an .onnx file)');
  return models;
}

export function gatewayCommand(): Command {
  const gateway = new Command('gateway').description(
    'an HTTP inference service that leases chips as demand grows and verifies every receipt',
  );

  gateway
    .command('start')
    .description('run the gateway: lease chips within a budget, route jobs, verify and store receipts')
    .requiredOption('--from <key>', 'keyring key that pays for the leases and signs every request')
    .requiredOption(
      '--budget <unc>',
      'the most the renter key may spend in any hour (lease charges and transaction fees), UNC',
    )
    .requiredOption('--models <list>', 'ocr and/or .onnx files, comma-separated (e.g. ocr,./resnet.onnx)')
    .option('--port <port>', 'port of the HTTP API and status page', '7080')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--db <file>', 'the database of jobs, receipts and leases (default: <home>/gateway/gateway.db)')
    .option('--min-leases <n>', 'leases kept even when idle', '1')
    .option('--max-leases <n>', 'leases held at most', '4')
    .option('--target-wait <seconds>', 'open a lease when a job waits longer than this', '2')
    .option('--target-p99 <seconds>', 'open a lease when the p99 latency is above this and jobs wait', '5')
    .option('--idle-close <seconds>', "close a lease idle this long (and at least its offer's notice)", '60')
    .option('--cooldown <seconds>', 'wait this long after opening a lease before opening another', '3')
    .option('--attempt-timeout <seconds>', "a provider's answer to one job is awaited this long", '30')
    .option(
      '--job-retention <days>',
      'delete finished jobs (results, receipts) this long after they finished; 0 keeps them',
      '30',
    )
    .option('--providers <addresses>', 'lease only from these provider addresses (comma-separated)')
    .option('--api-token-file <file>', 'require Authorization: Bearer <token> (the first line of the file)')
    .option('--password-file <file>', "the renter key's password")
    .option(
      '--prove',
      "act only on chip keys, leases and heights proven by the light client (Merkle proofs against validator-signed headers), not the node's word",
    )
    .option('--genesis <file>', "with --prove: the chain's genesis file to trust (default: the home's)")
    .option('--trusted-checkpoint <height:hash>', "with --prove: trust this epoch's last block instead")
    .option('--max-age <seconds>', MAX_AGE_HELP, String(DEFAULT_MAX_AGE_S))
    .hook('preAction', (_self, action) => requireProveFor(action))
    .action(
      async (
        opts: {
          from: string;
          budget: string;
          models: string;
          port: string;
          host: string;
          db?: string;
          minLeases: string;
          maxLeases: string;
          targetWait: string;
          targetP99: string;
          idleClose: string;
          cooldown: string;
          attemptTimeout: string;
          jobRetention: string;
          providers?: string;
          apiTokenFile?: string;
          passwordFile?: string;
          prove?: boolean;
          genesis?: string;
          trustedCheckpoint?: string;
          maxAge?: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        let budget: bigint;
        try {
          budget = parseUnc(opts.budget);
        } catch {
          throw new UncError(
            'BAD_ARGUMENT',
            `invalid --budget "${opts.budget}": UNC per hour, e.g. 10 or 2.5`,
          );
        }
        if (budget <= 0n) throw new UncError('BAD_ARGUMENT', '--budget must be more than 0 UNC per hour');
        const models = modelsOption(opts.models);
        const port = portOption(opts.port, 'port');
        const minLeases = countOption(opts.minLeases, 'min-leases', 0, 64);
        const maxLeases = countOption(opts.maxLeases, 'max-leases', 1, 64);
        if (minLeases > maxLeases)
          throw new UncError('BAD_ARGUMENT', '--min-leases is more than --max-leases');
        const apiToken = opts.apiTokenFile
          ? readSecretFile(opts.apiTokenFile, 'an API token').split('\n')[0]!.trim()
          : undefined;
        if (opts.apiTokenFile && !apiToken)
          throw new UncError('BAD_ARGUMENT', `${opts.apiTokenFile} holds no token`);
        if (!apiToken && !isLoopbackHost(opts.host))
          throw new UncError(
            'BAD_ARGUMENT',
            `--host ${opts.host} without --api-token-file: anyone who reaches the API could spend the budget`,
          );
        const logger = createLogger('gateway');
        // Before the first await: a signal while the node is asked (or a password) exits at once
        // (nothing is open yet); during the gateway's start it stops it once started (shutdown.ts).
        const shutdown = new Shutdown(logger).install();
        const client = ctx.client();
        const status = await client.status();
        const devChain = (await client.getParams()).devChain === true;
        const seed = await ctx.unlockKey(opts.from, status.chainId, opts);
        const dbPath = dbPathOf(ctx, opts.db);
        // The gateway's own folder (the default one, under the home) is its owner's alone: the
        // database in it holds every job's input and result. A --db elsewhere keeps its folder's
        // mode (it may be shared); the store makes the file itself 0600 either way.
        mkdirSync(dirname(dbPath), { recursive: true, mode: 0o700 });
        if (opts.db === undefined) chmodSync(dirname(dbPath), 0o700);
        const gw = new Gateway({
          nodeUrl: ctx.nodeUrl,
          renterSeed: seed,
          chainId: status.chainId,
          budgetPerHour: budget,
          models,
          dbPath,
          host: opts.host,
          port,
          targets: {
            minLeases,
            maxLeases,
            queueWaitMs: msOption(opts.targetWait, 'target-wait'),
            latencyP99Ms: msOption(opts.targetP99, 'target-p99'),
            idleCloseMs: msOption(opts.idleClose, 'idle-close'),
            scaleUpCooldownMs: msOption(opts.cooldown, 'cooldown'),
          },
          attemptTimeoutMs: msOption(opts.attemptTimeout, 'attempt-timeout'),
          jobRetentionMs: daysOption(opts.jobRetention, 'job-retention'),
          ...(opts.providers ? { providers: opts.providers.split(',').map((s) => s.trim()) } : {}),
          ...(apiToken ? { apiToken } : {}),
          allowHttp: devChain,
          ...(opts.prove
            ? {
                trustAnchor: await trustAnchorOf(ctx.home, opts, async () => status.chainId),
                proofMaxAgeMs:
                  countOption(opts.maxAge ?? String(DEFAULT_MAX_AGE_S), 'max-age', 1, 10 * 365 * 86_400) *
                  1000,
              }
            : {}),
          logger,
        });
        // Its start (reading the chain, adopting the leases a previous run left, the API) runs to
        // its end; a signal meanwhile then stops it (shutdown.ts): it killed the process outright.
        if (
          !(await shutdown.startUp(async () => {
            await shutdown.step(async () => {
              await gw.start();
              // In the step: a signal during the start finds it added and stops it.
              shutdown.add('gateway', () => gw.stop());
            });
          }))
        )
          return;
        ctx.print({ url: gw.url, renter: gw.renter, db: dbPath, budgetPerHour: budget.toString() }, () =>
          [
            `gateway running for ${gw.renter}, budget ${formatUnc(budget)} UNC/h`,
            `  API     ${gw.url}/v1/jobs`,
            `  status  ${gw.url}/`,
            `  metrics ${gw.url}/metrics`,
            `  db      ${dbPath}`,
          ].join('\n'),
        );
      },
    );

  gateway
    .command('jobs')
    .description("the gateway's jobs, newest first, with their cost and receipt")
    .option('--db <file>', 'the database (default: <home>/gateway/gateway.db)')
    .option('--status <status>', 'only jobs queued, running, done or failed')
    .option('--limit <n>', 'at most this many', '50')
    .action((opts: { db?: string; status?: string; limit: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (opts.status && !['queued', 'running', 'done', 'failed'].includes(opts.status))
        throw new UncError('BAD_ARGUMENT', '--status is one of queued, running, done, failed');
      const store = openStore(ctx, opts.db);
      const rows = store.jobs({
        limit: countOption(opts.limit, 'limit', 1, 100_000),
        ...(opts.status ? { status: opts.status as 'queued' } : {}),
      });
      store.close();
      const views = rows.map(jobView);
      ctx.print(views, () =>
        views.length === 0
          ? 'no jobs'
          : views
              .map(
                (j) =>
                  `${j.jobId}  ${j.status.padEnd(7)} ${j.model}  ${j.latencyMs ?? '–'} ms  ${j.attempts} attempt(s)  ${j.cost === null ? '' : `${formatUnc(BigInt(j.cost))} UNC`}  ${j.leaseId ? `lease ${j.leaseId.slice(0, 16)}…` : ''}${j.error ? `  ${j.error}` : ''}`,
              )
              .join('\n'),
      );
    });

  gateway
    .command('receipts')
    .description('every answered job with its chip-signed receipt (JSON lines), for an audit')
    .option('--db <file>', 'the database (default: <home>/gateway/gateway.db)')
    .option('--export <file>', 'write them to this file instead of stdout')
    .action((opts: { db?: string; export?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const store = openStore(ctx, opts.db);
      const lines = store.receipts().map((row) => {
        const v = jobView(row);
        return JSON.stringify({
          jobId: v.jobId,
          model: v.model,
          leaseId: v.leaseId,
          provider: v.provider,
          chipId: v.chipId,
          cost: v.cost,
          finishedMs: v.finishedMs,
          receipt: v.receipt?.hex,
          receiptJson: v.receipt?.json,
        });
      });
      store.close();
      const text = lines.length ? `${lines.join('\n')}\n` : '';
      if (opts.export) {
        writeFileSync(opts.export, text);
        ctx.print(
          { file: opts.export, receipts: lines.length },
          () => `${lines.length} receipt(s) written to ${opts.export}`,
        );
      } else process.stdout.write(text);
    });

  gateway
    .command('forget-opening <hash>')
    .description(
      'forget a lease opening the gateway still counts against its budget (e.g. one a hostile node gave an inflated expiry height), and its fee not seen included; asks first',
    )
    .option('--db <file>', 'the database (default: <home>/gateway/gateway.db)')
    .action(async (hash: string, opts: { db?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const txHash = hash.trim().toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(txHash))
        throw new UncError('BAD_ARGUMENT', `"${hash}" is not a transaction hash (64 hex digits)`);
      const path = dbPathOf(ctx, opts.db);
      if (!existsSync(path))
        throw new UncError('NO_GATEWAY_DB', `no gateway database at ${path}: pass --db <file>`);
      const store = new GatewayStore(path);
      try {
        const shown = store.pendingOpening(txHash);
        if (!shown) {
          const known = store.pendingOpens().map((o) => o.txHash);
          throw new UncError(
            'NOT_FOUND',
            `no pending lease opening ${txHash} in ${path} (${known.length === 0 ? 'it holds none' : `it holds: ${known.join(', ')}`}); nothing changed`,
          );
        }
        const { open, heldFee } = shown;
        await confirm(
          [
            `Forget the lease opening ${open.txHash} (in ${path}):`,
            `  rate      ${formatUnc(BigInt(open.pricePerHour))} UNC/h, counted against the budget until the chain passes height ${open.expiresAt}`,
            heldFee
              ? `  its fee   ${formatUnc(BigInt(heldFee.fee))} UNC, not seen included, counted too`
              : '  its fee   seen included (or not recorded): kept',
            'On your word: should the chain include it after all, its lease opens and is charged beyond the',
            'budget, and the gateway neither serves on it nor closes it (unc market lease close). Check first on',
            'a node you trust (unc query tx). A running gateway stops counting it at its next refresh.',
          ],
          { yes: ctx.yes, interactive: process.stdin.isTTY === true, action: 'forget it' },
        );
        const forgotten = store.forgetPendingOpening(txHash, shown);
        if (!forgotten)
          throw new UncError(
            'CHANGED',
            `the opening ${txHash} changed while you confirmed (a running gateway settled it, or its fee was seen included): nothing changed; run the command again`,
          );
        ctx.print(
          { forgotten: forgotten.open, heldFee: forgotten.heldFee },
          () =>
            `Forgot the lease opening ${txHash}${forgotten.heldFee ? ` and its fee of ${formatUnc(BigInt(forgotten.heldFee.fee))} UNC` : ''}`,
        );
      } finally {
        store.close();
      }
    });

  return gateway;
}

function openStore(ctx: Context, db?: string): GatewayStore {
  const path = dbPathOf(ctx, db);
  if (!existsSync(path))
    throw new UncError('NO_GATEWAY_DB', `no gateway database at ${path}: pass --db <file>`);
  return new GatewayStore(path, { readonly: true });
}
