import { decodeAddress, formatUnc, parseUnc, UncError } from '@unc/core';
import { buildTransaction, encodeSigned, signedHash, transferAction, type UncClient } from '@unc/sdk';
import { Command } from 'commander';
import { askLine, ctxOf, withCommon } from '../context.js';

/** Asks "question [y/N]" on the terminal; anything but yes cancels. Needs a terminal (or --yes). */
async function confirm(question: string): Promise<void> {
  if (!process.stdin.isTTY) throw new UncError('CONFIRMATION_REQUIRED', 'not a terminal: pass --yes to send');
  const answer = await askLine(`${question} [y/N] `);
  if (!/^y(es)?$/i.test(answer.trim())) throw new UncError('CANCELLED', 'cancelled; nothing was sent');
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
    withCommon(
      tx
        .command(kind)
        .description(
          kind === 'bond'
            ? 'pledge UNC as a validator bond: the key that bonds becomes a validator candidate (PROTOCOL §6)'
            : 'start unbonding: the UNC returns to the balance by itself after the unbonding period (3 epochs; nothing more to send)',
        )
        .requiredOption('--from <name>', 'name of the key in the keyring')
        .requiredOption('--amount <UNC>', 'amount in UNC, e.g. 100')
        .option('--fee <UNC>', 'fee in UNC (default: the chain minimum)')
        .option('--password-file <file>', "read the key's password from a file")
        .option('--yes', 'do not ask for confirmation'),
    ).action(
      async (
        opts: { from: string; amount: string; fee?: string; passwordFile?: string; yes?: boolean },
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
        const seed = await ctx.unlockKey(opts.from, status.chainId, opts);
        const stx = await buildTransaction(client, seed, [{ type: kind, amount }], {
          ...(fee === undefined ? {} : { fee }),
        });
        if (!opts.yes) {
          await confirm(
            `${kind === 'bond' ? 'Bond' : 'Unbond'} ${formatUnc(amount)} UNC of ${from.address} (fee ${formatUnc(stx.tx.fee)} UNC)?`,
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
