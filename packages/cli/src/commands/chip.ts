import { existsSync, readFileSync } from 'node:fs';
import { decodeAddress, formatUnc, fromHex, pemToDer, registrationMessage, toHex, UncError } from '@unc/core';
import { type ChipEventJson, type ChipJson, setHeartbeatOperatorAction, type TxEventJson } from '@unc/sdk';
import { Command } from 'commander';
import { ctxOf, examples } from '../context.js';
import { resolveId } from '../ids.js';
import { type Sent, signAndSend } from '../send.js';

/** Power is dense FP16 TFLOPS × 1000. */
export function formatPower(power: string): string {
  const p = BigInt(power);
  return `${p / 1000n}.${(p % 1000n).toString().padStart(3, '0')} TFLOPS`;
}

function eventText(e: TxEventJson): string {
  switch (e.type) {
    case 'slotAnswered':
      return `answered slot ${e.slot} of epoch ${e.epoch} (slot block ${e.slotHeight})`;
    case 'slotMissed':
      return `MISSED slot ${e.slot} of epoch ${e.epoch} (slot block ${e.slotHeight}): ${e.reason}`;
    case 'chipRegistered':
      return `registered by ${e.owner} as ${e.vendorId}/${e.modelId}, ${formatPower(e.power)}`;
    case 'chipTransferred':
      return `transferred from ${e.from} to ${e.to}`;
    case 'chipDeregistered':
      return `deregistered from ${e.owner} (by its owner, or by anyone once its credentials were revoked)`;
    case 'chipRebooted':
      return `rebooted (TPM resetCount ${e.resetCount}, restartCount ${e.restartCount})`;
    case 'answerUncredited':
      return e.reason === 'asleep'
        ? `answered slot ${e.slot} of epoch ${e.epoch} (slot block ${e.slotHeight}) WITHOUT CREDIT: asleep (TPM clock advanced ${e.clockAdvanceMs} ms of the ${e.requiredMs} ms required since the previous answer)`
        : `answered slot ${e.slot} of epoch ${e.epoch} (slot block ${e.slotHeight}) WITHOUT CREDIT: the TPM rebooted since the previous answer`;
    default:
      return JSON.stringify(e);
  }
}

export function chipLine(c: ChipJson): string {
  const state = c.status !== 'active' ? c.status.toUpperCase() : c.online ? 'online' : 'OFFLINE';
  return `${c.chipId.slice(0, 16)}…  ${`${c.vendorId}/${c.modelId}`.padEnd(18)} ${formatPower(c.power).padStart(16)}  ${state.padEnd(12)} answered ${c.slotsAnswered}, missed ${c.slotsMissed}  owner ${c.owner}`;
}

export function chipCommand(): Command {
  const chip = new Command('chip').description('chips registered on the chain');

  chip
    .command('list')
    .description('registered chips')
    .option('--owner <address|key>', 'only chips of this owner')
    .action(async (opts: { owner?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const owner = opts.owner ? ctx.address(opts.owner) : undefined;
      const chips = await ctx.client().call<ChipJson[]>('unc_getChips', owner ? [owner] : []);
      ctx.print(chips, () => (chips.length === 0 ? 'no chips registered' : chips.map(chipLine).join('\n')));
    });

  chip
    .command('show <chip-id>')
    .addHelpText(
      'after',
      examples([
        'unc chip show 3f9a1c0b2d4e6f70…       # the 16 digits chip list prints',
        'unc chip show 3f9a1c -o json > chip.json',
      ]),
    )
    .description(
      "a chip's state, its slots this epoch, and its event log (every slot answered or missed, and why)",
    )
    .option('--events <n>', 'how many log entries', '30')
    .action(async (id: string, opts: { events: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const chipId = await resolveId(ctx, 'chip', id);
      const limit = Number(opts.events);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
        throw new UncError('BAD_ARGUMENT', '--events must be 1…1000');
      const client = ctx.client();
      const [c, events] = await Promise.all([
        client.call<ChipJson>('unc_getChip', [chipId]),
        client.call<ChipEventJson[]>('unc_getChipEvents', [chipId, limit]),
      ]);
      ctx.print({ ...c, events }, () =>
        [
          `chip ${c.chipId}`,
          `  vendor/model   ${c.vendorId}/${c.modelId} (${c.profile})`,
          `  power          ${formatPower(c.power)}`,
          `  owner          ${c.owner}`,
          `  status         ${c.status}${c.statusReason ? ` (${c.statusReason})` : ''}, ${c.online ? 'online' : `OFFLINE (${c.consecutiveMisses} consecutive missed challenges)`}`,
          `  registered at  ${c.registeredAt} (challenged from epoch ${c.firstEpoch})`,
          `  challenges     ${c.slotsAnswered} answered, ${c.slotsMissed} missed`,
          `  rewards        ${formatUnc(BigInt(c.rewardsEarned))} UNC`,
          ...(c.tpmClock
            ? [
                `  TPM clock      ${c.tpmClock.clock} ms, resetCount ${c.tpmClock.resetCount}, restartCount ${c.tpmClock.restartCount}`,
              ]
            : []),
          ...(c.heartbeatOperator
            ? [`  operator       ${c.heartbeatOperator} (its heartbeats answer for the owner's chips)`]
            : []),
          `  class          ${c.challengeClass} (each block challenges one class, drawn from its beacon: nobody knows the next one)`,
          '  challenges (previous and current epoch, so far):',
          ...c.slots.map(
            (s) =>
              `    epoch ${s.epoch} #${s.slot}  block ${String(s.height).padStart(7)}  ${s.status}${s.status === 'open' ? ` (answer by ${s.windowEnd})` : ''}`,
          ),
          '  log (newest first):',
          ...events.map((e) => `    ${String(e.height).padStart(7)}  ${eventText(e.event)}`),
        ].join('\n'),
      );
    });

  chip
    .command('register-message')
    .description(
      'the message a chip must sign to be registered by this owner now (for evidence made by other tools)',
    )
    .requiredOption('--from <key>', 'the owner key in the keyring')
    .action(async (opts: { from: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const owner = ctx.keyring().info(opts.from);
      const client = ctx.client();
      const [status, anchor] = await Promise.all([client.status(), client.getHeader('latest')]);
      // The chip signs this for the chain named here: evidence for a chain the home does not pin
      // could be relayed there by anyone.
      ctx.checkChainPin(status.chainId);
      const message = registrationMessage(
        status.chainId,
        decodeAddress(owner.address),
        fromHex(anchor.hash, 32),
      );
      const out = { anchorHeight: anchor.height, message: toHex(message), owner: owner.address };
      ctx.print(
        out,
        () => `message ${out.message}\nanchor height ${out.anchorHeight} (valid for the next blocks only)`,
      );
    });

  chip
    .command('register')
    .description('register a TPM chip from evidence files (tpm2_quote -q <message> -m/-s)')
    .requiredOption('--from <key>', 'the owner key in the keyring')
    .requiredOption('--vendor <id>', 'the vendor id of the AK certificate issuer')
    .requiredOption('--anchor-height <n>', 'the anchor height printed by unc chip register-message')
    .requiredOption('--attest <file>', 'TPMS_ATTEST')
    .requiredOption('--signature <file>', 'TPMT_SIGNATURE')
    .requiredOption('--ak-cert <file>', 'the AK certificate (PEM; issuers after it are taken as the chain)')
    .option('--password-file <file>', "the owner key's password")
    .action(
      async (
        opts: {
          from: string;
          vendor: string;
          anchorHeight: string;
          attest: string;
          signature: string;
          akCert: string;
          passwordFile?: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        if (!/^\d+$/.test(opts.anchorHeight))
          throw new UncError('BAD_ARGUMENT', '--anchor-height must be a height');
        for (const f of [opts.attest, opts.signature, opts.akCert]) {
          if (!existsSync(f)) throw new UncError('BAD_FILE', `${f} does not exist`);
        }
        const certs = pemToDer(readFileSync(opts.akCert, 'utf8'));
        if (certs.length === 0) throw new UncError('BAD_FILE', `${opts.akCert} holds no PEM certificate`);
        const sent = (await signAndSend(
          ctx,
          opts,
          [
            {
              type: 'registerChip',
              anchorHeight: BigInt(opts.anchorHeight),
              evidence: {
                type: 'tpm2',
                vendorId: opts.vendor,
                attest: new Uint8Array(readFileSync(opts.attest)),
                signature: new Uint8Array(readFileSync(opts.signature)),
                akCertificate: certs[0]!,
                chain: certs.slice(1),
              },
            },
          ],
          { summary: [`Register the TPM chip of ${opts.akCert} (vendor ${opts.vendor})`], spend: 0n },
        )) as Sent;
        const registered = sent.events.find((e) => e.type === 'chipRegistered');
        const out = {
          hash: sent.hash,
          height: sent.height,
          chipId: registered && 'chipId' in registered ? registered.chipId : null,
          explorer: sent.explorer,
        };
        ctx.print(out, () => `registered chip ${out.chipId} at height ${out.height}`);
      },
    );

  chip
    .command('set-operator <address|none>')
    .description(
      "name the one key whose heartbeats answer for all your chips (the miner host's hot key), or none",
    )
    .addHelpText(
      'after',
      "\nThe operator can send your chips' heartbeats and nothing else: no transfer, deregistration,\noffer or spending of your balance; rewards stay yours. It pays its own heartbeat fees. A change\ntakes effect from the next block. Naming one burns 100 × the per-action fee (a record kept for\ngood). Run `unc miner start --from <operator key> --operator-for <your address>` on the miner host.",
    )
    .requiredOption('--from <key>', 'the owner key in the keyring (keep it off the miner host)')
    .option('--password-file <file>', "the owner key's password")
    .action(async (target: string, opts: { from: string; passwordFile?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const operator = target.trim().toLowerCase() === 'none' ? null : ctx.address(target);
      const owner = ctx.address(opts.from);
      if (operator === owner)
        throw new UncError('SELF_OPERATOR', 'the owner answers for its own chips already: name another key');
      const sent = (await signAndSend(ctx, opts, [setHeartbeatOperatorAction(operator)], {
        summary: [
          operator
            ? `Let ${operator} send the heartbeats of every chip of ${owner} (from the next block)`
            : `Remove the heartbeat operator of ${owner} (from the next block)`,
        ],
        spend: 0n,
      })) as Sent;
      const out = { hash: sent.hash, height: sent.height, owner, operator, explorer: sent.explorer };
      ctx.print(out, () =>
        operator
          ? `${operator} answers for the chips of ${owner} from height ${out.height + 1}`
          : `no heartbeat operator for ${owner} from height ${out.height + 1}`,
      );
    });

  return chip;
}
