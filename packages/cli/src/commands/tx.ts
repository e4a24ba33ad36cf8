import { existsSync, readFileSync } from 'node:fs';
import {
  type Action,
  decodeAddress,
  formatUnc,
  fromHex,
  parseUnc,
  type SetConsensusKeyAction,
  toHex,
  UncError,
} from '@unc/core';
import { buildTransaction, encodeSigned, signedHash, transferAction, type UncClient } from '@unc/sdk';
import { Command } from 'commander';
import { askLine, ctxOf, withCommon } from '../context.js';

/** Asks "question [y/N]" on the terminal; anything but yes cancels. Needs a terminal (or --yes). */
async function confirm(question: string): Promise<void> {
  if (!process.stdin.isTTY) throw new UncError('CONFIRMATION_REQUIRED', 'not a terminal: pass --yes to send');
  const answer = await askLine(`${question} [y/N] `);
  if (!/^y(es)?$/i.test(answer.trim())) throw new UncError('CANCELLED', 'cancelled; nothing was sent');
}

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

/** Waits for the transaction's block; a drop becomes an error with the node's reason. */
async function included(client: UncClient, hash: string) {
  const outcome = await client.waitForTransaction(hash);
  if (outcome.status === 'rejected') {
    throw new UncError(outcome.code, `transaction ${hash} was dropped: ${outcome.reason}`);
  }
  return outcome;
}

export function txCommand(): Command {
  const tx = new Command('tx').description('sign and send transactions');

  withCommon(
    tx
      .command('transfer')
      .description('send UNC from a keyring key to an address')
      .requiredOption('--from <name>', 'name of the sending key in the keyring')
      .requiredOption('--to <address>', 'receiving address (unc1…)')
      .requiredOption('--amount <UNC>', 'amount in UNC, e.g. 12.5')
      .option('--memo <text>', 'a note stored with the transfer', '')
      .option('--fee <UNC>', 'fee in UNC (default: the chain minimum)')
      .option('--password-file <file>', "read the key's password from a file")
      .option('--no-wait', 'return after the node accepts it, without waiting for inclusion')
      .option('--yes', 'do not ask for confirmation'),
  ).action(
    async (
      opts: {
        from: string;
        to: string;
        amount: string;
        memo: string;
        fee?: string;
        passwordFile?: string;
        wait: boolean;
        yes?: boolean;
      },
      cmd: Command,
    ) => {
      const ctx = ctxOf(cmd);
      decodeAddress(opts.to);
      const amount = parseUnc(opts.amount);
      if (amount === 0n) throw new UncError('BAD_AMOUNT', 'the amount must be more than 0');
      const fee = opts.fee === undefined ? undefined : parseUnc(opts.fee);
      const keyring = ctx.keyring();
      const from = keyring.info(opts.from);
      const client = ctx.client();
      const status = await client.status();
      const seed = await ctx.unlockKey(opts.from, status.chainId, opts);
      const stx = await buildTransaction(client, seed, [transferAction(opts.to, amount, opts.memo)], {
        ...(fee === undefined ? {} : { fee }),
      });
      if (!opts.yes) {
        await confirm(
          `Send ${formatUnc(amount)} UNC from ${from.address} to ${opts.to} (fee ${formatUnc(stx.tx.fee)} UNC)?`,
        );
      }
      const hash = signedHash(stx);
      await client.sendRawTransaction(encodeSigned(stx));
      if (ctx.output === 'text') console.log(`transaction ${hash} accepted by the node`);
      if (!opts.wait) {
        if (ctx.output === 'json') ctx.print({ hash, status: 'pending' });
        return;
      }
      const outcome = await included(client, hash);
      ctx.print(
        {
          hash,
          status: 'included',
          height: outcome.height,
          index: outcome.index,
          blockHash: outcome.blockHash,
        },
        () => `included at height ${outcome.height} (block ${outcome.blockHash})`,
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
    withCommon(
      command
        .description(
          kind === 'bond'
            ? 'pledge UNC as a validator bond; with --consensus-key (once) the account names the key its validator node votes with and becomes a candidate (PROTOCOL §6)'
            : 'start unbonding: the UNC returns to the balance by itself after the unbonding period (3 epochs; nothing more to send)',
        )
        .requiredOption('--from <name>', 'name of the key in the keyring')
        .requiredOption('--amount <UNC>', 'amount in UNC, e.g. 100')
        .option('--fee <UNC>', 'fee in UNC (default: the chain minimum)')
        .option('--password-file <file>', "read the key's password from a file")
        .option('--yes', 'do not ask for confirmation'),
    ).action(
      async (
        opts: {
          from: string;
          amount: string;
          fee?: string;
          passwordFile?: string;
          yes?: boolean;
          consensusKey?: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const amount = parseUnc(opts.amount);
        if (amount === 0n) throw new UncError('BAD_AMOUNT', 'the amount must be more than 0');
        const fee = opts.fee === undefined ? undefined : parseUnc(opts.fee);
        const keyring = ctx.keyring();
        const from = keyring.info(opts.from);
        const client = ctx.client();
        const status = await client.status();
        const actions: Action[] = [];
        if (opts.consensusKey !== undefined) {
          actions.push(readConsensusKeyProof(opts.consensusKey, status.chainId, from.address));
        }
        actions.push({ type: kind, amount });
        const seed = await ctx.unlockKey(opts.from, status.chainId, opts);
        const stx = await buildTransaction(client, seed, actions, {
          ...(fee === undefined ? {} : { fee }),
        });
        if (!opts.yes) {
          await confirm(
            `${kind === 'bond' ? 'Bond' : 'Unbond'} ${formatUnc(amount)} UNC of ${from.address}${actions.length > 1 ? ` for consensus key ${toHex((actions[0] as SetConsensusKeyAction).publicKey)}` : ''} (fee ${formatUnc(stx.tx.fee)} UNC)?`,
          );
        }
        const hash = signedHash(stx);
        await client.sendRawTransaction(encodeSigned(stx));
        const outcome = await included(client, hash);
        ctx.print(
          { hash, status: 'included', height: outcome.height, action: kind, amount: amount.toString() },
          () =>
            `${kind === 'bond' ? 'bonded' : 'unbonding'} ${formatUnc(amount)} UNC at height ${outcome.height}`,
        );
      },
    );
  }

  return tx;
}
