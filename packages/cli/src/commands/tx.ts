import { existsSync, readFileSync } from 'node:fs';
import { type Action, fromHex, parseUnc, type SetConsensusKeyAction, toHex, UncError } from '@unc/core';
import { transferAction } from '@unc/sdk';
import { Command } from 'commander';
import { ctxOf, examples } from '../context.js';
import { type Sent, signAndSend, unc } from '../send.js';

/**
 * The setConsensusKey action from `--consensus-key`: a file holding the JSON that
 * `unc consensus-key` printed, or "publicKeyHex:signatureHex". The proof must be for this chain
 * and this account (the chain checks the signature again).
 */
function readConsensusKeyProof(arg: string, chainId: string, account: string): SetConsensusKeyAction {
  let publicKey: string;
  let signature: string;
  const inline = /^([0-9a-fA-F]{64}):([0-9a-fA-F]{128})$/.exec(arg);
  if (inline) {
    publicKey = inline[1]!;
    signature = inline[2]!;
  } else {
    if (!existsSync(arg))
      throw new UncError('BAD_FILE', `${arg} does not exist (nor is it publicKeyHex:signatureHex)`);
    let proof: Record<string, unknown>;
    try {
      proof = JSON.parse(readFileSync(arg, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new UncError('BAD_FILE', `${arg} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof proof.seed === 'string') {
      throw new UncError(
        'BAD_FILE',
        `${arg} holds a private key: pass the proof from \`unc consensus-key\` instead, and keep the key on the validator host`,
      );
    }
    if (proof.chainId !== chainId) {
      throw new UncError(
        'WRONG_CHAIN',
        `${arg} is a proof for chain "${String(proof.chainId)}", this is "${chainId}"`,
      );
    }
    if (proof.account !== account) {
      throw new UncError('WRONG_ACCOUNT', `${arg} is a proof for ${String(proof.account)}, not ${account}`);
    }
    publicKey = String(proof.publicKey);
    signature = String(proof.signature);
  }
  try {
    return { type: 'setConsensusKey', publicKey: fromHex(publicKey, 32), signature: fromHex(signature, 64) };
  } catch {
    throw new UncError('BAD_FILE', `${arg}: publicKey must be 32 bytes and signature 64 bytes of hex`);
  }
}

export function txCommand(): Command {
  const tx = new Command('tx').description('sign and send transactions');

  tx.command('transfer')
    .description('send UNC from a keyring key to an address or to another key by name')
    .requiredOption('--from <name>', 'name of the sending key in the keyring')
    .requiredOption('--to <address|key>', 'receiving address (unc1…) or the name of a key in the keyring')
    .requiredOption('--amount <UNC>', 'amount in UNC, e.g. 12.5')
    .option('--memo <text>', 'a note stored with the transfer', '')
    .option('--fee <UNC>', 'fee in UNC (default: the chain minimum)')
    .option('--password-file <file>', "read the key's password from a file")
    .option('--no-wait', 'return after the node accepts it, without waiting for inclusion')
    .addHelpText(
      'after',
      examples([
        'unc tx transfer --from dev0 --to dev1 --amount 12.5',
        'unc tx transfer --from alice --to unc1… --amount 0.001 --memo "invoice 42" -y -o json',
      ]),
    )
    .action(
      async (
        opts: {
          from: string;
          to: string;
          amount: string;
          memo: string;
          fee?: string;
          passwordFile?: string;
          wait: boolean;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const to = ctx.address(opts.to);
        const amount = parseUnc(opts.amount);
        if (amount === 0n) throw new UncError('BAD_AMOUNT', 'the amount must be more than 0');
        const fee = opts.fee === undefined ? undefined : parseUnc(opts.fee);
        const toName = to === opts.to ? '' : ` (${opts.to})`;
        const sent = await signAndSend(
          ctx,
          opts,
          [transferAction(to, amount, opts.memo)],
          {
            summary: [
              `Transfer ${unc(amount)} to ${to}${toName}${opts.memo ? ` with memo "${opts.memo}"` : ''}`,
            ],
            spend: amount,
            ...(fee === undefined ? {} : { fee }),
          },
          { wait: opts.wait },
        );
        if ('pending' in sent) {
          ctx.print(
            { hash: sent.hash, status: 'pending', explorer: sent.explorer },
            () => `transaction ${sent.hash} is pending${sent.explorer ? `\nexplorer: ${sent.explorer}` : ''}`,
          );
          return;
        }
        ctx.print(
          {
            hash: sent.hash,
            status: 'included',
            height: sent.height,
            index: sent.index,
            blockHash: sent.blockHash,
            explorer: sent.explorer,
          },
          () =>
            `sent ${unc(amount)} to ${to}${toName}: included at height ${sent.height} (block ${sent.blockHash})`,
        );
      },
    );

  for (const kind of ['bond', 'unbond'] as const) {
    const command = tx.command(kind);
    if (kind === 'bond') {
      command.option(
        '--consensus-key <file|pubhex:sighex>',
        'register the consensus key in this proof (the output of `unc consensus-key` on the validator host); once per account',
      );
    }
    command
      .description(
        kind === 'bond'
          ? 'pledge UNC as a validator bond; with --consensus-key (once) the account names the key its validator node votes with; it is a candidate while it has the minimum validator bond (default 1,000 UNC) bonded (PROTOCOL §6)'
          : 'start unbonding: the UNC returns to the balance by itself after the unbonding period (3 epochs; nothing more to send)',
      )
      .requiredOption('--from <name>', 'name of the key in the keyring')
      .requiredOption('--amount <UNC>', 'amount in UNC, e.g. 100')
      .option('--fee <UNC>', 'fee in UNC (default: the chain minimum)')
      .option('--password-file <file>', "read the key's password from a file")
      .addHelpText(
        'after',
        examples(
          kind === 'bond'
            ? [
                'unc tx bond --from alice --amount 100 --consensus-key consensus-key.json',
                'unc tx bond --from alice --amount 50',
              ]
            : ['unc tx unbond --from alice --amount 25'],
        ),
      )
      .action(
        async (
          opts: { from: string; amount: string; fee?: string; passwordFile?: string; consensusKey?: string },
          cmd: Command,
        ) => {
          const ctx = ctxOf(cmd);
          const amount = parseUnc(opts.amount);
          if (amount === 0n) throw new UncError('BAD_AMOUNT', 'the amount must be more than 0');
          const fee = opts.fee === undefined ? undefined : parseUnc(opts.fee);
          const from = ctx.keyring().info(opts.from);
          const actions: Action[] = [];
          if (opts.consensusKey !== undefined) {
            const { chainId } = await ctx.client().status();
            actions.push(readConsensusKeyProof(opts.consensusKey, chainId, from.address));
          }
          actions.push({ type: kind, amount });
          const keyLine =
            actions.length > 1
              ? [`  and name consensus key ${toHex((actions[0] as SetConsensusKeyAction).publicKey)}`]
              : [];
          const sent = (await signAndSend(ctx, opts, actions, {
            summary: [
              kind === 'bond'
                ? `Bond ${unc(amount)} as a validator bond`
                : `Unbond ${unc(amount)} (back in the balance after the unbonding period)`,
              ...keyLine,
            ],
            // Unbonding moves bonded UNC, not the balance: only the fee leaves it.
            spend: kind === 'bond' ? amount : 0n,
            ...(fee === undefined ? {} : { fee }),
          })) as Sent;
          ctx.print(
            {
              hash: sent.hash,
              status: 'included',
              height: sent.height,
              action: kind,
              amount: amount.toString(),
              explorer: sent.explorer,
            },
            () => `${kind === 'bond' ? 'bonded' : 'unbonding'} ${unc(amount)} at height ${sent.height}`,
          );
        },
      );
  }

  return tx;
}
