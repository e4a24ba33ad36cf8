import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatUnc, parseGenesis, toHex, UncError } from '@unc/core';
import { parseTrustedCheckpoint } from '@unc/node';
import {
  type BlockJson,
  type LeaseJson,
  LightClient,
  type ModelJson,
  type RecordFreshness,
  type RewardJson,
  RpcClientError,
  type TrustAnchor,
  type TxJson,
  type TxReceiptJson,
  type VendorJson,
  type VerifiedHeader,
  walkBoundaries,
} from '@unc/sdk';
import { Command } from 'commander';
import { type Context, countOption, ctxOf, examples } from '../context.js';
import { type IdKind, parseId, resolveId } from '../ids.js';
import { formatPower } from './chip.js';

function blockRef(text: string): number | string {
  if (/^\d+$/.test(text)) return Number(text);
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(text)) return text.replace(/^0x/, '').toLowerCase();
  if (text === 'latest') return 'latest';
  throw new UncError(
    'BAD_BLOCK_REF',
    `invalid block "${text}": expected a height, a 64-hex-digit hash or "latest"`,
  );
}

function txHashArg(text: string): string {
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(text)) {
    throw new UncError('BAD_TX_HASH', `invalid transaction hash "${text}": expected 64 hex digits`);
  }
  return text.replace(/^0x/, '').toLowerCase();
}

function blockText(b: BlockJson): string {
  const lines = [
    `block ${b.height}  ${b.hash}`,
    `  time        ${b.time}`,
    `  proposer    ${b.proposerAddress}`,
    `  prev        ${b.prevHash}`,
    `  state root  ${b.stateRoot}`,
    `  tx root     ${b.txRoot}`,
    `  txs         ${b.txCount}`,
  ];
  for (const t of b.txs as (string | TxJson)[]) lines.push(`    ${typeof t === 'string' ? t : t.hash}`);
  return lines.join('\n');
}

export function queryCommand(): Command {
  const query = new Command('query').description('read the chain');

  query
    .command('account <address|key>')
    .description("an account's balance and nonce")
    .option(
      '--prove',
      'verify the balance with a Merkle proof against a header the light client verified (validator commits walked from the genesis or --trusted-checkpoint)',
    )
    .option('--genesis <file>', "the chain's genesis file to trust (default: the home's genesis.json)")
    .option(
      '--trusted-checkpoint <height:hash>',
      "trust this block (an epoch's last block) instead of the genesis",
    )
    .option('--max-age <seconds>', MAX_AGE_HELP, String(DEFAULT_MAX_AGE_S))
    .hook('preAction', (_self, action) => requireProveFor(action))
    .addHelpText(
      'after',
      examples([
        'unc query account dev1',
        'unc query account unc1… --prove -o json',
        'unc query account unc1… --prove --trusted-checkpoint 3600:ab12…',
      ]),
    )
    .action(
      async (
        address: string,
        opts: { prove?: boolean; genesis?: string; trustedCheckpoint?: string; maxAge?: string },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const client = ctx.client();
        if (!opts.prove) {
          const account = await client.getAccount(ctx.address(address));
          ctx.print(account, () =>
            [
              `address  ${account.address}`,
              `balance  ${formatUnc(BigInt(account.balance))} UNC`,
              `nonce    ${account.nonce}`,
              `height   ${account.height}`,
            ].join('\n'),
          );
          return;
        }
        const anchor = await trustAnchorOf(ctx.home, opts, () => client.status().then((s) => s.chainId));
        const lc = new LightClient(client, anchor);
        const freshness = freshnessOf(opts);
        const { account, header } = await walkBoundaries(
          () => lc.verifyAccount(client, ctx.address(address), freshness),
          (through) => process.stderr.write(`validator sets verified through block ${through}; going on\n`),
        );
        const trusted =
          anchor.kind === 'genesis'
            ? `genesis of ${anchor.chainId}`
            : `checkpoint ${anchor.height}:${toHex(anchor.hash)}`;
        const verification = {
          trustAnchor: trusted,
          blockTime: new Date(Number(header.header.time)).toISOString(),
          header: toHex(header.hash),
          signedPower: header.signedPower.toString(),
          totalPower: header.totalPower.toString(),
          boundariesCrossed: header.boundariesCrossed,
        };
        ctx.print({ ...account, verified: true, verification }, () =>
          [
            `address  ${account.address}`,
            `balance  ${formatUnc(BigInt(account.balance))} UNC`,
            `nonce    ${account.nonce}`,
            `height   ${account.height}  (proof verified against the state root)`,
            `time     ${verification.blockTime}  (the block's; older than ${opts.maxAge ?? DEFAULT_MAX_AGE_S} s by this machine's clock is refused, --max-age)`,
            `header   ${verification.header}`,
            `  signed by ${verification.signedPower} of ${verification.totalPower} voting power, ${header.boundariesCrossed} epoch boundaries verified from the ${trusted}`,
          ].join('\n'),
        );
      },
    );

  const proveOptions = (c: Command): Command =>
    c
      .option(
        '--prove',
        'verify the record with Merkle proofs against a header the light client verified (validator commits walked from the genesis or --trusted-checkpoint)',
      )
      .option('--genesis <file>', "the chain's genesis file to trust (default: the home's genesis.json)")
      .option(
        '--trusted-checkpoint <height:hash>',
        "trust this block (an epoch's last block) instead of the genesis",
      )
      .option('--max-age <seconds>', MAX_AGE_HELP, String(DEFAULT_MAX_AGE_S))
      .hook('preAction', (_self, action) => requireProveFor(action));
  type ProveOpts = { prove?: boolean; genesis?: string; trustedCheckpoint?: string; maxAge?: string };

  /** The light client and what a verified answer prints under it. */
  const proving = async (ctx: Context, opts: ProveOpts, kind: IdKind, typed: string) => {
    const client = ctx.client();
    // A prefix names a full id through the node's lists (ids.ts), which proves nothing: the proofs
    // are for the full id printed, the one the node's lists gave, and the output says so.
    const parsed = parseId(typed, kind);
    const prefix = 'prefix' in parsed ? parsed.prefix : null;
    const anchor = await trustAnchorOf(ctx.home, opts, () => client.status().then((s) => s.chainId));
    const lc = new LightClient(client, anchor);
    const trusted =
      anchor.kind === 'genesis'
        ? `genesis of ${anchor.chainId}`
        : `checkpoint ${anchor.height}:${toHex(anchor.hash)}`;
    const progress = (through: bigint) =>
      process.stderr.write(`validator sets verified through block ${through}; going on\n`);
    const freshness = freshnessOf(opts);
    const verification = (header: VerifiedHeader) => ({
      trustAnchor: trusted,
      height: Number(header.header.height),
      blockTime: new Date(Number(header.header.time)).toISOString(),
      header: toHex(header.hash),
      signedPower: header.signedPower.toString(),
      totalPower: header.totalPower.toString(),
      boundariesCrossed: header.boundariesCrossed,
      ...(prefix ? { idFromPrefix: prefix } : {}),
    });
    const lines = (v: ReturnType<typeof verification>) => [
      ...(prefix
        ? [
            `id       from the prefix ${prefix} by the node's lists (not proven: the proofs are for the full id above)`,
          ]
        : []),
      `height   ${v.height}  (proofs verified against the state root)`,
      `time     ${v.blockTime}  (the block's; older than ${opts.maxAge ?? DEFAULT_MAX_AGE_S} s by this machine's clock is refused, --max-age)`,
      `header   ${v.header}`,
      `  signed by ${v.signedPower} of ${v.totalPower} voting power, ${v.boundariesCrossed} epoch boundaries verified from the ${trusted}`,
    ];
    return { client, lc, progress, verification, lines, freshness };
  };

  proveOptions(
    query
      .command('chip <chip-id>')
      .description("a chip's record: owner, key, power and status (with --prove: verified)"),
  )
    .addHelpText(
      'after',
      examples([
        'unc query chip 3f2a… --prove',
        'unc query chip 3f2a… --prove --trusted-checkpoint 3600:ab12… -o json',
      ]),
    )
    .action(async (id: string, opts: ProveOpts, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const chipId = await resolveId(ctx, 'chip', id);
      if (!opts.prove) {
        const c = await ctx.client().getChip(chipId);
        ctx.print(c, () =>
          chipLines(
            c.chipId,
            c.owner,
            c.profile,
            c.keyMaterial ?? '',
            c.power,
            c.status,
            c.statusReason,
          ).join('\n'),
        );
        return;
      }
      const { client, lc, progress, verification, lines, freshness } = await proving(ctx, opts, 'chip', id);
      const r = await walkBoundaries(() => lc.verifyChip(client, chipId, freshness), progress);
      const v = verification(r.header);
      if (r.chip === null) {
        ctx.print({ chipId, exists: false, verified: true, verification: v }, () =>
          [`chip     ${chipId}  does not exist (proven absent)`, ...lines(v)].join('\n'),
        );
        return;
      }
      const c = r.chip;
      const out = {
        chipId: toHex(c.chipId),
        exists: true,
        owner: r.json.owner,
        vendorId: c.vendorId,
        modelId: c.modelId,
        profile: c.profile,
        power: c.power.toString(),
        keyMaterial: toHex(c.keyMaterial),
        certSerials: c.certSerials,
        status: r.status,
        statusReason: r.statusReason,
        verified: true,
        verification: v,
      };
      ctx.print(out, () =>
        [
          ...chipLines(
            out.chipId,
            out.owner,
            out.profile,
            out.keyMaterial,
            out.power,
            out.status,
            out.statusReason,
          ),
          ...lines(v),
        ].join('\n'),
      );
    });

  proveOptions(
    query
      .command('lease <lease-id>')
      .description("a lease's record: parties, escrow, status and endpoint (with --prove: verified)"),
  )
    .addHelpText(
      'after',
      examples(['unc query lease 9c0e… --prove', 'unc query lease 9c0e… --prove -o json']),
    )
    .action(async (id: string, opts: ProveOpts, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const leaseId = await resolveId(ctx, 'lease', id);
      if (!opts.prove) {
        const l = await ctx.client().getLease(leaseId);
        ctx.print(l, () => leaseLines(l).join('\n'));
        return;
      }
      const { client, lc, progress, verification, lines, freshness } = await proving(ctx, opts, 'lease', id);
      const r = await walkBoundaries(() => lc.verifyLease(client, leaseId, freshness), progress);
      const v = verification(r.header);
      if (r.lease === null) {
        ctx.print({ id: leaseId, exists: false, verified: true, verification: v }, () =>
          [`lease    ${leaseId}  does not exist (proven absent)`, ...lines(v)].join('\n'),
        );
        return;
      }
      // Every field printed was compared with the proven record (verified-records.ts checkLease);
      // only those are printed, not whatever else a node adds to its answer.
      const json = Object.fromEntries(PROVEN_LEASE_FIELDS.map((k) => [k, r.json[k]]));
      const out = { ...json, exists: true, verified: true, verification: v };
      ctx.print(out, () => [...leaseLines(r.json), ...lines(v)].join('\n'));
    });

  query
    .command('block <height|hash>')
    .description('a block by height or hash ("latest" too)')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const block = await ctx.client().getBlock(blockRef(ref));
      ctx.print(block, () => blockText(block));
    });

  query
    .command('tx <hash>')
    .description('a transaction, where it was included and what it did')
    .action(async (hash: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = ctx.client();
      const txHash = txHashArg(hash);
      let r: TxReceiptJson;
      try {
        r = await client.getTransaction(txHash);
      } catch (err) {
        // Not on chain: say where it is instead (dropped, with why and when; or still pending).
        if (!(err instanceof RpcClientError) || (err.reason !== 'DROPPED' && err.reason !== 'PENDING'))
          throw err;
        const s = await client.getTransactionStatus(txHash);
        if (s.status === 'dropped') {
          ctx.print(s, () =>
            [
              `transaction ${s.hash}`,
              `  dropped: ${s.code} at height ${s.height}`,
              `  reason     ${s.reason}`,
            ].join('\n'),
          );
          return;
        }
        if (s.status === 'pending') {
          ctx.print(s, () =>
            [`transaction ${s.hash}`, '  pending    in the mempool, not yet included'].join('\n'),
          );
          return;
        }
        throw err;
      }
      ctx.print(r, () =>
        [
          `transaction ${r.hash}`,
          `  included   height ${r.height}, index ${r.index} (${r.time})`,
          `  from       ${r.tx.from}  nonce ${r.tx.nonce}`,
          `  fee        ${formatUnc(BigInt(r.tx.fee))} UNC`,
          ...r.tx.actions.map((a) =>
            a.type === 'transfer'
              ? `  transfer   ${formatUnc(BigInt(a.amount))} UNC to ${a.to}`
              : `  ${a.type.padEnd(10)} ${JSON.stringify(a)}`,
          ),
        ].join('\n'),
      );
    });

  query
    .command('supply')
    .description('max supply, genesis 3%, mined, reserve left, burned, circulating')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const s = await ctx.client().getSupply();
      const line = (label: string, v: string) =>
        `${label.padEnd(24)} ${formatUnc(BigInt(v)).padStart(30)} UNC`;
      ctx.print(s, () =>
        [
          line('max supply', s.maxSupply),
          line('genesis allocation', s.genesisAllocation),
          line('mining reserve (97%)', s.miningReserve),
          line('mined so far', s.minted),
          line('reserve remaining', s.reserveRemaining),
          line('burned fees', s.burned),
          line('slashed', s.slashed),
          line('circulating', s.circulating),
          line('schedule allows by now', s.emittedAllowance),
          `${'halving period'.padEnd(24)} ${(s.halvingPeriodMs / 86_400_000).toFixed(2).padStart(30)} days`,
        ].join('\n'),
      );
    });

  query
    .command('rewards <owner|key|chip-id>')
    .description(
      'earnings per epoch, and why: slots answered and missed, grace, power, budget, network weight',
    )
    .action(async (target: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      // An address or key name first; else a chip id or a prefix of one.
      const byChip = /^(0x)?[0-9a-fA-F]+(…|\.\.\.)?$/.test(target);
      const who = byChip ? await resolveId(ctx, 'chip', target) : ctx.address(target);
      const rows = await ctx.client().call<RewardJson[]>('unc_getRewards', [who]);
      const total = rows.reduce((sum, r) => sum + BigInt(r.amount), 0n);
      ctx.print({ total: total.toString(), rewards: rows }, () =>
        rows.length === 0
          ? 'no rewards yet (a chip is paid for an epoch once it is final and the chip answers again or is claimed)'
          : [
              `total ${formatUnc(total)} UNC over ${rows.length} chip-epochs${byChip ? '' : ' (chips registered now; a deregistered chip by its id)'}`,
              ...rows.map(
                (r) =>
                  `  epoch ${String(r.epoch).padStart(5)}  chip ${r.chipId.slice(0, 12)}…  ${formatUnc(BigInt(r.amount)).padStart(14)} UNC  answered ${r.slotsAnswered} of ${r.slotsChallenged}, missed ${r.slotsMissed}, grace ${r.graceUsed}; weight ${r.weight} of ${r.networkWeight}; budget ${formatUnc(BigInt(r.epochBudget))} UNC`,
              ),
            ].join('\n'),
      );
    });

  query
    .command('vendors')
    .description('registered chip vendors: trust anchors and profiles')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const vendors = await ctx.client().call<VendorJson[]>('unc_getVendors');
      ctx.print(vendors, () =>
        vendors
          .map((v) => `${v.id.padEnd(12)} ${v.profile.padEnd(18)} ${v.roots.length} root(s)  ${v.name}`)
          .join('\n'),
      );
    });

  query
    .command('models')
    .description('registered chip models and their rated power')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const models = await ctx.client().call<ModelJson[]>('unc_getModels');
      ctx.print(models, () =>
        models
          .map(
            (m) =>
              `${`${m.vendorId}/${m.modelId}`.padEnd(24)} ${formatPower(m.power).padStart(16)}  ${m.name}`,
          )
          .join('\n'),
      );
    });

  return query;
}

export function statusCommand(): Command {
  return new Command('status')
    .description("the node's latest committed block")
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx: Context = ctxOf(cmd);
      const s = await ctx.client().status();
      ctx.print(s, () =>
        [
          `chain      ${s.chainId}`,
          `height     ${s.height} (finalized: blocks are final once committed)`,
          `hash       ${s.hash}`,
          `state root ${s.stateRoot}`,
          `time       ${s.time}`,
          `mempool    ${s.mempool.size} txs`,
          // The one state an operator must act on: the node follows nothing until restarted.
          ...(s.syncStopped
            ? [
                `sync       STOPPED (CONFLICTING CHAIN) at height ${s.syncStopped.height}: ${s.syncStopped.reason}`,
                `           ours ${s.syncStopped.ours}, theirs ${s.syncStopped.theirs}${s.syncStopped.peer ? ` from peer ${s.syncStopped.peer}` : ''}`,
                `           next: ${s.syncStopped.nextStep}`,
              ]
            : []),
        ].join('\n'),
      );
    });
}

/**
 * `verifyAccount`, called again each time it stops at its boundary limit having moved forward: one
 * process is one call for the user, and a chain more than 64 epochs past the anchor was otherwise
 * never reachable from it (each run starts from the anchor again). Each call's work stays bounded,
 * and a node cannot stretch the walk beyond the real chain (each boundary needs the proven set's
 * commit); a call that made no progress ends it.
 */
export async function verifyAccountWalking(
  lc: Pick<LightClient, 'verifyAccount'>,
  client: Parameters<LightClient['verifyAccount']>[0],
  address: string,
  progress: (verifiedThrough: bigint) => void,
): ReturnType<LightClient['verifyAccount']> {
  return walkBoundaries(() => lc.verifyAccount(client, address), progress);
}

/**
 * How old a proven record may be (`--max-age`, seconds): the node picks the height it answers at,
 * so a true but old state (a lease closed since, TLS pins rotated since, a chip revoked since)
 * verifies like a fresh one. The light client refuses a record read at a block older than this by
 * this machine's clock (`STALE`). A client-side freshness bound, not a validity rule: only the
 * verified header's time is compared, and the chain makes a block every second or so.
 */
export const DEFAULT_MAX_AGE_S = 600;

/** The options that say how `--prove` verifies, by commander name and flag. */
const PROVE_ONLY = [
  ['maxAge', '--max-age'],
  ['genesis', '--genesis'],
  ['trustedCheckpoint', '--trusted-checkpoint'],
] as const;

/**
 * `--max-age`, `--genesis` and `--trusted-checkpoint` without `--prove` are refused (PROVE_REQUIRED),
 * nothing asked of any node: they bound and anchor a verification that only `--prove` makes, so a
 * user who passed one believed a record was checked (fresh, against that anchor) when the node's
 * word was taken. Not applied instead: without proofs the block time is the node's word too, and a
 * bound on it stops nothing a lying node says. Only options given (command line or environment)
 * count, not `--max-age`'s default.
 */
export function requireProveFor(cmd: Command): void {
  if (cmd.getOptionValue('prove') === true) return;
  const given = PROVE_ONLY.filter(([name]) => {
    const source = cmd.getOptionValueSource(name);
    return source !== undefined && source !== 'default';
  }).map(([, flag]) => flag);
  if (given.length > 0)
    throw new UncError(
      'PROVE_REQUIRED',
      `${given.join(', ')} ${given.length === 1 ? 'applies' : 'apply'} only with --prove (the light client's check; without it the node's word is taken and nothing is verified): add --prove, or leave ${given.length === 1 ? 'it' : 'them'} out`,
    );
}

/** Makes `cmd` refuse its prove-only options without `--prove` (requireProveFor), before its action. */
export function proveOnly(cmd: Command): Command {
  return cmd.hook('preAction', (_self, action) => requireProveFor(action));
}
export const MAX_AGE_HELP =
  "with --prove (an error without it): refuse a record read at a block older than this many seconds by this machine's clock (a node may serve a true but old state)";

/** The oldest block time a proven read may have, from `--max-age` and this machine's clock. */
export function freshnessOf(opts: { maxAge?: string }): RecordFreshness {
  const seconds = countOption(opts.maxAge ?? String(DEFAULT_MAX_AGE_S), 'max-age', 1, 10 * 365 * 86_400);
  return { notBefore: BigInt(Date.now() - seconds * 1000) };
}

/**
 * What `--prove` trusts: a checkpoint the user names (its hash binds the chain id, so the node's
 * word on that is checked against it), else the genesis file (--genesis, or the home's).
 */
export async function trustAnchorOf(
  home: string,
  opts: { genesis?: string; trustedCheckpoint?: string },
  chainIdOfNode: () => Promise<string>,
): Promise<TrustAnchor> {
  if (opts.trustedCheckpoint !== undefined) {
    let cp: { height: bigint; hash: Uint8Array };
    try {
      cp = parseTrustedCheckpoint(opts.trustedCheckpoint);
    } catch (err) {
      throw new UncError('BAD_CHECKPOINT', `--trusted-checkpoint: ${(err as Error).message}`);
    }
    return { kind: 'checkpoint', chainId: await chainIdOfNode(), height: cp.height, hash: cp.hash };
  }
  const path = opts.genesis ?? join(home, 'genesis.json');
  if (!existsSync(path)) {
    throw new UncError(
      'BAD_GENESIS',
      `--prove needs a trust anchor: no genesis file at ${path} (pass --genesis FILE or --trusted-checkpoint HEIGHT:HASH)`,
    );
  }
  let genesis: ReturnType<typeof parseGenesis>;
  try {
    genesis = parseGenesis(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new UncError('BAD_GENESIS', `${path}: ${(err as Error).message}`);
  }
  // The chain the caller goes on to use beside the light client (a receipt's chain id in `unc job
  // … --prove`, the gateway's) is the node's status: it must be the trusted genesis's, or a
  // receipt for another chain passed against a chip key proven on this one.
  const nodeChainId = await chainIdOfNode();
  if (nodeChainId !== genesis.chainId)
    throw new UncError(
      'CHAIN_MISMATCH',
      `the node is on chain "${nodeChainId}", but the genesis trusted (${path}) is of chain "${genesis.chainId}": nothing was proven`,
    );
  return {
    kind: 'genesis',
    chainId: genesis.chainId,
    validators: genesis.validators,
    epochBlocks: genesis.poci.epochBlocks,
  };
}

function chipLines(
  chipId: string,
  owner: string,
  profile: string,
  key: string,
  power: string,
  status: string,
  reason: string,
): string[] {
  return [
    `chip     ${chipId}`,
    `owner    ${owner}`,
    `profile  ${profile}`,
    `key      ${key || '(not given)'}`,
    `power    ${formatPower(power)}`,
    `status   ${status}${reason ? ` (${reason})` : ''}`,
  ];
}

/** The LeaseJson fields checkLease compares with the proven record (and the root it checked). */
const PROVEN_LEASE_FIELDS = [
  'id',
  'offerId',
  'chipId',
  'provider',
  'renter',
  'renterPublicKey',
  'endpoint',
  'tlsFingerprints',
  'pricePerHour',
  'hours',
  'deposit',
  'paid',
  'refunded',
  'remaining',
  'unsettled',
  'escrowUntil',
  'status',
  'startHeight',
  'startTime',
  'endTime',
  'settledTime',
  'slotsAnswered',
  'slotsMissed',
  'closingReason',
  'disputes',
  'closedHeight',
  'closedTime',
  'closedReason',
  'height',
  'stateRoot',
] as const satisfies readonly (keyof LeaseJson)[];

function leaseLines(l: LeaseJson): string[] {
  return [
    `lease    ${l.id}`,
    `status   ${l.status}${l.closedReason ? ` (${l.closedReason})` : l.closingReason ? ` (${l.closingReason})` : ''}`,
    `chip     ${l.chipId}`,
    `provider ${l.provider}`,
    `renter   ${l.renter}  key ${l.renterPublicKey}`,
    `endpoint ${l.endpoint || '(none)'}${l.tlsFingerprints.length ? `  tls ${l.tlsFingerprints.join(',')}` : ''}`,
    `escrow   ${formatUnc(BigInt(l.remaining))} UNC left of ${formatUnc(BigInt(l.deposit))} UNC, until ${new Date(l.escrowUntil).toISOString()}`,
  ];
}
