/** `unc market …`: compute rental (PROTOCOL.md §8): offers, leases and provider records. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Action, parseUnc, toHex, UncError } from '@unc/core';
import {
  finishInterruptedPromotion,
  pemFingerprint,
  prepareNextCertificate,
  promoteNextCertificate,
  readProviderCertificate,
} from '@unc/miner';
import {
  checkLeaseTerms,
  closeLeaseAction,
  closeOfferAction,
  createOfferAction,
  decodeSignedJobRequest,
  decodeSignedReceipt,
  describeOfferTerms,
  disputeAction,
  type LeaseJson,
  leaseDisputeAllowance,
  type OfferJson,
  offerTermsDigest,
  openLeaseAction,
  type ProviderRecordJson,
  postReceiptAction,
  type TxEventJson,
  topUpLeaseAction,
  updateOfferTlsAction,
  withdrawOfferChipAction,
} from '@unc/sdk';
import { Command } from 'commander';
import { type Context, checkHome, ctxOf, examples } from '../context.js';
import { resolveId } from '../ids.js';
import { pinLease } from '../lease-pins.js';
import { type Plan, type Sent, signAndSend, unc } from '../send.js';
import { formatPower } from './chip.js';

function intArg(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max)
    throw new UncError('BAD_ARGUMENT', `${flag} must be a whole number ${min}…${max}, got "${text}"`);
  return n;
}

const UNIT_MS: Record<string, bigint> = { ms: 1n, s: 1000n, m: 60_000n, h: 3_600_000n, d: 86_400_000n };

/** "90s", "10m", "1h", "2d", "500ms" → milliseconds. */
export function parseDuration(text: string): bigint {
  const m = /^(\d{1,12})(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new UncError('BAD_DURATION', `invalid duration "${text}": use e.g. 30s, 10m, 1h, 2d`);
  return BigInt(m[1]!) * UNIT_MS[m[2]!]!;
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** "80GiB", "512MiB" or a plain number of MiB. */
export function parseMemory(text: string): number {
  const m = /^(\d{1,9})\s*(mib|gib)?$/i.exec(text.trim());
  if (!m) throw new UncError('BAD_ARGUMENT', `invalid --memory "${text}": use e.g. 80GiB or 81920 (MiB)`);
  const mib = Number(m[1]) * (m[2]?.toLowerCase() === 'gib' ? 1024 : 1);
  if (mib > 0xffff_ffff) throw new UncError('BAD_ARGUMENT', '--memory is too large');
  return mib;
}

interface SendOpts {
  from: string;
  passwordFile?: string;
}

/**
 * Waits until the chain takes the dispute: its block time past the request's response wait (a
 * provider must have had the time to answer; sooner, DISPUTE_TOO_EARLY), and the lease's dispute
 * allowance not used up (one per disputeWaitMs of lease time its renter kept and paid for; past it,
 * TOO_MANY_DISPUTES). An allowance the running lease will still grow is waited for (at most one
 * wait); one it can no longer grow is an error, and nothing is sent. Exported for its test.
 */
export async function untilDisputable(ctx: Context, leaseId: string, requestMs: bigint): Promise<void> {
  const client = ctx.client();
  const { disputeWaitMs } = await client.getParams();
  const due = Number(requestMs) + disputeWaitMs;
  const waitS = disputeWaitMs / 1000;
  let announced = '';
  for (;;) {
    const [{ timeMs }, lease] = await Promise.all([client.status(), client.getLease(leaseId)]);
    let until = due;
    let why = `the provider's response wait to pass (block time ${new Date(due).toISOString()})`;
    if (timeMs >= due) {
      const a = leaseDisputeAllowance(lease, timeMs, disputeWaitMs);
      if (lease.disputes < a.allowed) return;
      if (a.nextAtMs === null)
        throw new UncError(
          'TOO_MANY_DISPUTES',
          `lease ${leaseId} has ${lease.disputes} disputes, all the chain allows it: one per ${waitS} s of lease time its renter kept and paid for (kept until ${new Date(a.keptUntilMs).toISOString()}); nothing was sent`,
        );
      until = a.nextAtMs;
      why = `lease ${leaseId} to earn its next dispute (it has ${lease.disputes}, one per ${waitS} s of lease time kept; block time ${new Date(until).toISOString()})`;
    }
    if (announced !== why) {
      process.stderr.write(`waiting ${Math.ceil((until - timeMs) / 1000)} s for ${why}\n`);
      announced = why;
    }
    await new Promise((r) => setTimeout(r, Math.min(2_000, Math.max(200, until - timeMs))));
  }
}

/** Signs `actions` with a keyring key (after the checks and the confirmation), sends, waits. */
async function send(ctx: Context, opts: SendOpts, actions: Action[], plan: Plan): Promise<Sent> {
  return (await signAndSend(ctx, opts, actions, plan)) as Sent;
}

/** The lease pre-flight: the sdk's (shared with the explorer's rent form). */
export const checkLease = checkLeaseTerms;

function signerOf(cmd: Command): SendOpts {
  const o = cmd.optsWithGlobals() as Partial<SendOpts>;
  if (!o.from) throw new UncError('BAD_ARGUMENT', "required option '--from <key>' not specified");
  return { from: o.from, ...(o.passwordFile ? { passwordFile: o.passwordFile } : {}) };
}

/** The home's tls/ (the provider's key and certificates), held to the home's rule (BAD_HOME). */
function tlsDir(ctx: Context): string {
  const dir = join(ctx.home, 'tls');
  checkHome(dir, 'TLS folder');
  return dir;
}

/** The fingerprints an offer pins: none for http, the given or the home's certificate for https. */
function offerFingerprints(ctx: Context, endpoint: string, certFile?: string): string[] {
  if (!endpoint.startsWith('https://')) {
    if (certFile) throw new UncError('BAD_ARGUMENT', '--tls-cert goes with an https:// endpoint');
    return [];
  }
  if (certFile) {
    if (!existsSync(certFile)) throw new UncError('NO_FILE', `--tls-cert ${certFile} does not exist`);
    try {
      return [pemFingerprint(readFileSync(certFile, 'utf8'))];
    } catch (err) {
      throw new UncError('BAD_ARGUMENT', `--tls-cert ${certFile}: ${(err as Error).message}`);
    }
  }
  const pair = readProviderCertificate(tlsDir(ctx));
  if (!pair)
    throw new UncError(
      'NO_TLS_CERT',
      `an https:// endpoint pins its certificate on chain, but ${tlsDir(ctx)} has none: run unc miner init, or pass --tls-cert <file>`,
    );
  return [pair.fingerprint];
}

function withSigner(cmd: Command): Command {
  return cmd
    .requiredOption('--from <key>', 'the signing key in the keyring')
    .option('--password-file <file>', "read the key's password from a file");
}

const when = (ms: number) => new Date(ms).toISOString();

export function offerLine(o: OfferJson): string {
  const models = [...new Set(o.chips.map((c) => c.modelId))].join(',');
  const up = o.chips.map((c) => c.uptime.ratio).filter((r): r is string => r !== null);
  const uptime = up.length ? `${(Math.min(...up.map(Number)) * 100).toFixed(1)}%` : 'n/a';
  return [
    o.id,
    `${unc(o.price)}/h`.padStart(16),
    `${o.available}/${o.chips.length} free`,
    models.padEnd(10),
    formatPower(o.power).padStart(16),
    `uptime ${uptime}`,
    `${o.minHours}-${o.maxHours}h notice ${formatDuration(o.noticeMs)}`,
    o.attributes.region || '-',
    o.status,
    o.endpoint,
  ].join('  ');
}

export function offerText(o: OfferJson): string {
  return [
    `offer ${o.id} (${o.status}${o.closesAt ? `, leases end by ${when(o.closesAt)}` : ''})`,
    `  provider      ${o.provider}`,
    `  price         ${unc(o.price)} per hour`,
    `  duration      ${o.minHours}…${o.maxHours} hours, notice ${formatDuration(o.noticeMs)}`,
    `  endpoint      ${o.endpoint}`,
    ...(o.tlsFingerprints?.length ? [`  TLS SHA-256   ${o.tlsFingerprints.join(', ')}`] : []),
    `  attributes    memory ${o.attributes.memoryMiB ? `${o.attributes.memoryMiB} MiB` : 'n/a'}, region ${o.attributes.region || 'n/a'}, runtimes ${o.attributes.runtimes.join(',') || 'n/a'}`,
    `  leases        ${o.leasesOpened} opened`,
    '  chips:',
    ...o.chips.map(
      (c) =>
        `    ${c.chipId}  ${c.vendorId}/${c.modelId}  ${formatPower(c.power)}  ${c.online ? 'online' : 'OFFLINE'}  uptime 24h ${c.uptime.ratio ?? 'n/a'} (${c.uptime.answered} answered, ${c.uptime.missed} missed)  ${c.available ? 'free' : c.leaseId ? `leased (${c.leaseId.slice(0, 16)}…)` : 'unavailable'}`,
    ),
  ].join('\n');
}

export function leaseText(l: LeaseJson): string {
  return [
    `lease ${l.id} (${l.status}${l.closedReason ? `: ${l.closedReason}` : l.closingReason ? `: ${l.closingReason}` : ''})`,
    `  offer         ${l.offerId}`,
    `  chip          ${l.chipId}`,
    `  provider      ${l.provider}`,
    `  renter        ${l.renter} (key ${l.renterPublicKey})`,
    `  endpoint      ${l.endpoint}`,
    `  price         ${unc(l.pricePerHour)} per hour, ${l.hours} h`,
    `  time          ${when(l.startTime)} → ${when(l.endTime)}${l.closedTime ? `, closed ${when(l.closedTime)}` : ''}`,
    l.status === 'closed'
      ? `  paid through  ${when(l.escrowUntil)}`
      : `  ${l.status === 'ended' ? 'ended' : 'ends'}          ${when(l.escrowUntil)}${l.escrowUntil < l.endTime ? ' (the escrow runs out then; top up before to go on)' : ''}${l.status === 'ended' ? ': no job is served any more' : ''}`,
    `  deposit       ${unc(l.deposit)}`,
    `  paid          ${unc(l.paid)}`,
    `  refunded      ${unc(l.refunded)}`,
    `  remaining     ${unc(l.remaining)}${l.unsettled !== '0' ? ` (${unc(l.unsettled)} accrued, settled at the next epoch end)` : ''}${
      // A close with a challenge still open holds its last period's cost until that challenge's window closes.
      l.status === 'closed' && l.remaining !== '0'
        ? ' (held: its last period, split by its challenges once their answer windows close)'
        : ''
    }`,
    `  slots         ${l.slotsAnswered} answered, ${l.slotsMissed} missed (missed time is refunded)`,
    `  disputes      ${l.disputes}`,
  ].join('\n');
}

function leaseLine(l: LeaseJson): string {
  return `${l.id}  ${l.status.padEnd(7)}  chip ${l.chipId.slice(0, 16)}…  paid ${unc(l.paid)}  refunded ${unc(l.refunded)}  remaining ${unc(l.remaining)}  ends ${when(l.status === 'closed' ? l.endTime : l.escrowUntil)}`;
}

function eventOf<T extends TxEventJson['type']>(
  events: TxEventJson[],
  type: T,
): Extract<TxEventJson, { type: T }> {
  const e = events.find((x) => x.type === type);
  if (!e) throw new UncError('NO_EVENT', `the transaction was included but reported no ${type} event`);
  return e as Extract<TxEventJson, { type: T }>;
}

export function marketCommand(): Command {
  const market = new Command('market').description('rent compute: offers, leases, provider records');

  market
    .command('offers')
    .description("open offers (with --provider: that provider's open and closing ones)")
    .option('--provider <address|key>', "only this provider's offers")
    .option('--all', 'closed offers too (with --provider)')
    .action(async (opts: { provider?: string; all?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const provider = opts.provider ? ctx.address(opts.provider) : undefined;
      const offers = await ctx.client().getOffers({
        ...(provider ? { provider } : {}),
        ...(opts.all ? { all: true } : {}),
      });
      ctx.print(offers, () => (offers.length === 0 ? 'no offers' : offers.map(offerLine).join('\n')));
    });

  const offer = new Command('offer').description('create, show and close offers');
  market.addCommand(offer);

  withSigner(
    offer
      .command('create')
      .description('offer chips you own for rent')
      .requiredOption('--chips <ids>', 'comma-separated chip ids')
      .requiredOption('--price <UNC/h>', 'price per hour in UNC, e.g. 2.5')
      .requiredOption('--min-hours <n>', 'shortest lease, hours (0: pay as you go, any deposit)')
      .requiredOption('--max-hours <n>', 'longest lease, hours')
      .requiredOption('--notice <duration>', 'how long leases run on after you close, e.g. 30m, 1h')
      .requiredOption('--endpoint <url>', "your agent's job API, http(s)://…")
      .option('--memory <size>', 'accelerator memory, e.g. 80GiB')
      .option('--region <name>', 'region, e.g. eu-west')
      .option('--runtimes <list>', 'comma-separated runtimes, e.g. onnx')
      .option(
        '--tls-cert <file>',
        "the https endpoint's certificate (PEM) to pin (default: <home>/tls/provider.crt, from unc miner init)",
      ),
  ).action(
    async (
      opts: SendOpts & {
        chips: string;
        price: string;
        minHours: string;
        maxHours: string;
        notice: string;
        endpoint: string;
        memory?: string;
        region?: string;
        runtimes?: string;
        tlsCert?: string;
      },
      cmd: Command,
    ) => {
      const ctx = ctxOf(cmd);
      const chipIds = await Promise.all(opts.chips.split(',').map((c) => resolveId(ctx, 'chip', c)));
      const pricePerHour = parseUnc(opts.price);
      if (pricePerHour === 0n) throw new UncError('BAD_PRICE', 'the price must be more than 0');
      const minHours = intArg(opts.minHours, '--min-hours', 0, 87_600);
      const maxHours = intArg(opts.maxHours, '--max-hours', 1, 87_600);
      if (maxHours < minHours) throw new UncError('BAD_DURATION', '--max-hours is below --min-hours');
      if (!/^https?:\/\/\S+$/.test(opts.endpoint))
        throw new UncError('BAD_ENDPOINT', `invalid --endpoint "${opts.endpoint}": expected http(s)://…`);
      const action = createOfferAction({
        chipIds,
        pricePerHour,
        minHours,
        maxHours,
        noticeMs: parseDuration(opts.notice),
        endpoint: opts.endpoint,
        tlsFingerprints: offerFingerprints(ctx, opts.endpoint, opts.tlsCert),
        attributes: {
          memoryMiB: opts.memory ? parseMemory(opts.memory) : 0,
          region: opts.region ?? '',
          runtimes: opts.runtimes ? opts.runtimes.split(',').map((r) => r.trim()) : [],
        },
      });
      const { hash, height, events, explorer } = await send(ctx, opts, [action], {
        summary: [
          `Offer ${chipIds.length} chip(s) for ${unc(pricePerHour)} per hour, ${minHours}…${maxHours} h, at ${opts.endpoint}`,
        ],
        spend: 0n,
      });
      const created = eventOf(events, 'offerCreated');
      ctx.print(
        { hash, height, offerId: created.offerId, explorer },
        () => `offer ${created.offerId} created at height ${height}`,
      );
    },
  );

  withSigner(
    offer
      .command('rotate-tls <id>')
      .description(
        "start a TLS certificate rotation: post the current and a new certificate, then serve the new one (from this home's tls/)",
      )
      .option(
        '--revoke',
        'the current key may have leaked: post the new certificate alone, so that nobody is accepted with the old one even for an overlap (renters are refused until the agent serves the new one, about a block)',
      ),
  ).action(async (id: string, opts: SendOpts & { revoke?: boolean }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const offerId = await resolveId(ctx, 'offer', id);
    const dir = tlsDir(ctx);
    // A rotation killed between its renames is finished first: it left no current certificate.
    finishInterruptedPromotion(dir);
    const current = readProviderCertificate(dir);
    if (!current) throw new UncError('NO_TLS_CERT', `no provider certificate in ${dir}: run unc miner init`);
    const next = prepareNextCertificate(dir, { fresh: opts.revoke === true });
    // The chain lists both before the agent serves the new one, so no renter is ever refused; after
    // a leak the old one must not stay listed, since whoever holds its key would be accepted too.
    const fingerprints = opts.revoke ? [next.fingerprint] : [current.fingerprint, next.fingerprint];
    const { hash, height } = await send(ctx, opts, [updateOfferTlsAction(offerId, fingerprints)], {
      summary: [
        `Pin ${fingerprints.length === 1 ? 'only the new TLS certificate' : 'the current and a new TLS certificate'} for offer ${offerId}`,
      ],
      spend: 0n,
    });
    promoteNextCertificate(dir);
    ctx.print(
      { hash, height, offerId, previous: current.fingerprint, current: next.fingerprint, fingerprints },
      () =>
        [
          opts.revoke
            ? `offer ${offerId} lists only the new TLS certificate from height ${height}; the old one is refused; the agent now serves the new one`
            : `offer ${offerId} lists both TLS certificates from height ${height}; the agent now serves the new one`,
          `  previous ${current.fingerprint}`,
          `  current  ${next.fingerprint}`,
          ...(opts.revoke
            ? []
            : [
                'after the overlap (renters re-read the chain on a mismatch), run unc market offer retire-tls',
              ]),
        ].join('\n'),
    );
  });

  withSigner(
    offer
      .command('retire-tls <id>')
      .description('end a TLS certificate rotation: the offer lists only the certificate served now'),
  ).action(async (id: string, opts: SendOpts, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const offerId = await resolveId(ctx, 'offer', id);
    const current = readProviderCertificate(tlsDir(ctx));
    if (!current) throw new UncError('NO_TLS_CERT', `no provider certificate in ${tlsDir(ctx)}`);
    const { hash, height } = await send(ctx, opts, [updateOfferTlsAction(offerId, [current.fingerprint])], {
      summary: [`Pin only the TLS certificate ${current.fingerprint} for offer ${offerId}`],
      spend: 0n,
    });
    ctx.print(
      { hash, height, offerId, fingerprints: [current.fingerprint] },
      () => `offer ${offerId} pins only ${current.fingerprint} from height ${height}`,
    );
  });

  offer
    .command('show <id>')
    .description('one offer: terms, chips, uptime')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const o = await ctx.client().getOffer(await resolveId(ctx, 'offer', id));
      ctx.print(o, () => offerText(o));
    });

  withSigner(
    offer
      .command('close <id>')
      .description('stop offering; running leases continue until the notice period ends'),
  ).action(async (id: string, opts: SendOpts, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const offerId = await resolveId(ctx, 'offer', id);
    const { hash, height, events } = await send(ctx, opts, [closeOfferAction(offerId)], {
      summary: [`Close offer ${offerId} (running leases go on until the notice period ends)`],
      spend: 0n,
    });
    const closed = eventOf(events, 'offerClosed');
    const closing = events.filter((e) => e.type === 'leaseClosing').length;
    ctx.print(
      { hash, height, offerId: closed.offerId, closesAt: closed.closesAt, leasesClosing: closing },
      () =>
        `offer ${closed.offerId} closed at height ${height}; ${closing} running lease(s) end by ${when(closed.closesAt)}`,
    );
  });

  withSigner(
    offer
      .command('withdraw-chip <id> <chipId>')
      .description(
        'take one chip out of an open offer; a running lease of it ends after the notice period, and it is not leased again',
      ),
  ).action(async (id: string, chip: string, opts: SendOpts, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const offerId = await resolveId(ctx, 'offer', id);
    const chipId = await resolveId(ctx, 'chip', chip);
    const { hash, height, events } = await send(ctx, opts, [withdrawOfferChipAction(offerId, chipId)], {
      summary: [
        `Withdraw chip ${chipId} from offer ${offerId} (a running lease of it goes on until the notice period ends)`,
      ],
      spend: 0n,
    });
    const closing = events.find((e) => e.type === 'leaseClosing');
    const endsAt = closing && closing.type === 'leaseClosing' ? closing.endTime : null;
    ctx.print({ hash, height, offerId, chipId, leaseEndsAt: endsAt }, () =>
      endsAt === null
        ? `chip ${chipId} withdrawn from offer ${offerId} at height ${height}`
        : `chip ${chipId} withdrawn from offer ${offerId} at height ${height}; its lease ends by ${when(endsAt)}`,
    );
  });

  // Not requiredOption: commander would demand them of `lease show|close|topup` too.
  const lease = new Command('lease')
    .description('rent a chip of an offer (or: lease show|close|topup)')
    .argument('<offerId>', 'the offer to rent from')
    .option('--from <key>', 'the renting key in the keyring (required)')
    .option('--password-file <file>', "read the key's password from a file")
    .option('--hours <n>', 'lease length in hours (required)')
    .option('--chip <id>', 'which chip of the offer (default: the first free one)')
    .option('--deposit <UNC>', 'escrow to deposit (default: price × hours)')
    .addHelpText(
      'after',
      examples([
        'unc market offers',
        'unc market lease 3f9a1c --hours 2 --from dev1           # a unique prefix of the offer id',
        'unc market lease show 7b20e4',
        'unc market lease topup 7b20e4 5 --from dev1',
        'unc market lease close 7b20e4 --from dev1 -y',
      ]),
    );
  lease.action(
    async (
      offerId: string,
      opts: Partial<SendOpts> & { hours?: string; chip?: string; deposit?: string },
      cmd: Command,
    ) => {
      const ctx = ctxOf(cmd);
      const signer = signerOf(cmd);
      if (!opts.hours) throw new UncError('BAD_ARGUMENT', "required option '--hours <n>' not specified");
      const hours = intArg(opts.hours, '--hours', 1, 87_600);
      const id = await resolveId(ctx, 'offer', offerId);
      const chipId = opts.chip ? await resolveId(ctx, 'chip', opts.chip) : undefined;
      const deposit = opts.deposit ? parseUnc(opts.deposit) : undefined;
      // Pre-flight: an offer that is gone, closed or full is reported before anything is signed.
      const offer = await ctx.client().getOffer(id);
      const escrow = checkLease(offer, hours, chipId, deposit);
      // The deposit is signed as shown, never left 0 ("price × hours" at the chain's price): the
      // price shown is the node's word, and a hostile node could show a cheap offer whose real price
      // then took the balance. Signed explicitly, at most what was confirmed leaves it. The price
      // shown is signed too (maxPricePerHour): else that deposit would run out at the real price,
      // many times faster than confirmed; the chain refuses the lease if the offer costs more.
      // The offer's other terms as shown below (notice, endpoint, chips, ...) are signed: the chain
      // refuses the lease (OFFER_CHANGED) if they are not the offer's, so the node cannot have it
      // opened on terms the user never saw.
      const termsDigest = offerTermsDigest(offer);
      const action = openLeaseAction(id, hours, {
        ...(chipId ? { chipId } : {}),
        deposit: escrow,
        maxPricePerHour: BigInt(offer.price),
        termsDigest,
      });
      const { hash, height, events, explorer, chainId } = await send(ctx, signer, [action], {
        summary: [
          `Lease ${chipId ? `chip ${chipId}` : 'a free chip'} of offer ${id} for ${hours} h at ${unc(offer.price)} per hour`,
          `  deposit   ${unc(escrow)} into escrow (unused time is refunded)`,
          ...describeOfferTerms(offer, termsDigest).map((line) => `  ${line}`),
        ],
        spend: escrow,
      });
      const opened = eventOf(events, 'leaseOpened');
      // The endpoint confirmed above, under the lease id the node names: `unc job` sends there only.
      // A record refused (the id is another lease's) still lets the lease opened be printed first.
      let unpinned: unknown = null;
      try {
        pinLease(ctx.home, {
          leaseId: opened.leaseId,
          chainId,
          offerId: id,
          endpoint: offer.endpoint,
          hash,
        });
      } catch (err) {
        unpinned = err;
      }
      ctx.print(
        {
          hash,
          height,
          leaseId: opened.leaseId,
          chipId: opened.chipId,
          deposit: opened.deposit,
          endTime: opened.endTime,
          explorer,
        },
        () => opened.leaseId,
      );
      if (unpinned) throw unpinned;
    },
  );
  market.addCommand(lease);

  lease
    .command('show <id>')
    .description('a lease: paid, refunded, remaining, status')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const l = await ctx.client().getLease(await resolveId(ctx, 'lease', id));
      ctx.print(l, () => leaseText(l));
    });

  // `lease` itself parses the options given to its subcommands (--from, --home, --output…), so
  // they read them from the command chain.
  lease
    .command('close <id>')
    .description('renter: close now (settled, the rest refunded); provider: close after the notice period')
    .option('--from <key>', 'the signing key in the keyring (required)')
    .option('--password-file <file>', "read the key's password from a file")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const opts = signerOf(cmd);
      const leaseId = await resolveId(ctx, 'lease', id);
      const { hash, height, events } = await send(ctx, opts, [closeLeaseAction(leaseId)], {
        summary: [`Close lease ${leaseId} (a renter is refunded what is not used)`],
        spend: 0n,
      });
      const l = await ctx.client().getLease(leaseId);
      const closing = events.find((e) => e.type === 'leaseClosing');
      ctx.print({ hash, height, lease: l }, () =>
        closing && closing.type === 'leaseClosing'
          ? `lease ${leaseId} closing: it ends at ${when(closing.endTime)} (notice period)`
          : `lease ${leaseId} closed at height ${height}: paid ${unc(l.paid)}, refunded ${unc(l.refunded)}`,
      );
    });

  lease
    .command('topup <id> <amount>')
    .description('add UNC to a lease escrow')
    .option('--from <key>', 'the renting key in the keyring (required)')
    .option('--password-file <file>', "read the key's password from a file")
    .action(async (id: string, amount: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const opts = signerOf(cmd);
      const value = parseUnc(amount);
      if (value === 0n) throw new UncError('BAD_AMOUNT', 'the amount must be more than 0');
      const leaseId = await resolveId(ctx, 'lease', id);
      // Pre-flight, the chain's rules: only the renter tops up, and only a lease still running.
      const l = await ctx.client().getLease(leaseId);
      if (l.status === 'closed' || l.status === 'ended')
        throw new UncError('LEASE_NOT_RUNNING', `lease ${leaseId} is ${l.status}: it takes no top-up`);
      if (l.renter !== ctx.keyring().info(opts.from).address)
        throw new UncError(
          'NOT_RENTER',
          `key "${opts.from}" is not the renter of lease ${leaseId} (${l.renter} is)`,
        );
      const { hash, height, events } = await send(ctx, opts, [topUpLeaseAction(leaseId, value)], {
        summary: [`Top up lease ${leaseId} by ${unc(value)}`],
        spend: value,
      });
      const t = eventOf(events, 'leaseToppedUp');
      ctx.print(
        { hash, height, leaseId, amount: t.amount, remaining: t.remaining },
        () => `lease ${leaseId} topped up by ${unc(t.amount)}: ${unc(t.remaining)} in escrow`,
      );
    });

  market
    .command('leases')
    .description('the leases of a renter or a provider')
    .option('--renter <address|key>', "a renter's leases")
    .option('--provider <address|key>', "a provider's leases")
    .action(async (opts: { renter?: string; provider?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (!!opts.renter === !!opts.provider)
        throw new UncError('BAD_ARGUMENT', 'give exactly one of --renter <address> or --provider <address>');
      const who = ctx.address((opts.renter ?? opts.provider)!);
      const leases = await ctx.client().getLeases(opts.renter ? { renter: who } : { provider: who });
      ctx.print(leases, () => (leases.length === 0 ? 'no leases' : leases.map(leaseLine).join('\n')));
    });

  market
    .command('provider <address|key>')
    .description("a provider's record: jobs, ratings, disputes, earnings")
    .action(async (address: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const r: ProviderRecordJson = await ctx.client().getProviderRecord(ctx.address(address));
      ctx.print(r, () =>
        [
          `provider ${r.address}`,
          `  offers        ${r.offers} created, open: ${r.openOffers.length ? r.openOffers.join(', ') : 'none'}`,
          `  leases        ${r.leases} opened, ${r.activeLeases} running`,
          `  jobs          ${r.jobsReceipted} receipted`,
          `  rating        ${r.rating ?? 'n/a'} (${r.ratingsCount} ratings)`,
          `  disputes      ${r.disputes}`,
          `  earnings      ${unc(r.earnings)}`,
        ].join('\n'),
      );
    });

  withSigner(
    market
      .command('rate <receipt>')
      .description("renter: post a job's chip-signed receipt (file or hex) on chain with a rating 1–5")
      .requiredOption('--rating <n>', '1 (bad) … 5 (excellent)'),
  ).action(async (arg: string, opts: SendOpts & { rating: string }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const rating = intArg(opts.rating, '--rating', 1, 5);
    const hex = existsSync(arg) ? readFileSync(arg, 'utf8').trim() : arg.trim();
    let signed: ReturnType<typeof decodeSignedReceipt>;
    try {
      signed = decodeSignedReceipt(hex);
    } catch (err) {
      throw new UncError('BAD_RECEIPT', `not a signed receipt: ${(err as Error).message}`);
    }
    const { hash, height, events } = await send(ctx, opts, [postReceiptAction(signed, rating)], {
      summary: [`Post the receipt of job ${toHex(signed.receipt.jobId)} with rating ${rating}/5`],
      spend: 0n,
    });
    const e = eventOf(events, 'receiptPosted');
    ctx.print(
      { hash, height, leaseId: e.leaseId, jobId: e.jobId, provider: e.provider, rating: e.rating },
      () => `receipt of job ${e.jobId} posted at height ${height}: rated ${e.rating}/5 for ${e.provider}`,
    );
  });

  withSigner(
    market
      .command('dispute <request>')
      .description(
        'renter: record on chain a job request the provider did not answer (the signed request that ' +
          '`unc job … --request-out <file>` saved; file or hex). The chain takes it once its response ' +
          'wait (disputeWaitMs of `unc_getParams`, by block time) has passed since the request, on a lease ' +
          'kept running through that wait, one per wait of lease time kept and paid for; sooner, this waits for it',
      )
      .requiredOption('--reason <text>', 'what happened, e.g. "no answer within 60 s"'),
  ).action(async (arg: string, opts: SendOpts & { reason: string }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const hex = existsSync(arg) ? readFileSync(arg, 'utf8').trim() : arg.trim();
    let signed: ReturnType<typeof decodeSignedJobRequest>;
    try {
      signed = decodeSignedJobRequest(hex);
    } catch (err) {
      throw new UncError('BAD_REQUEST', `not a signed job request: ${(err as Error).message}`);
    }
    await untilDisputable(ctx, toHex(signed.request.leaseId), signed.request.timestampMs);
    const { hash, height, events } = await send(ctx, opts, [disputeAction(signed, opts.reason)], {
      summary: [`Record a dispute on lease ${toHex(signed.request.leaseId)}: "${opts.reason}"`],
      spend: 0n,
    });
    const e = eventOf(events, 'disputeRecorded');
    ctx.print(
      { hash, height, leaseId: e.leaseId, provider: e.provider, requestHash: e.requestHash },
      () => `dispute recorded at height ${height} against ${e.provider} (lease ${e.leaseId})`,
    );
  });

  // Usage errors of nested commands end like the others' (main.ts catches them).
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(market)) c.exitOverride();
  return market;
}
