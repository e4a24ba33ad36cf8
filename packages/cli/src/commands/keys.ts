import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import {
  deriveEd25519,
  mnemonicFromEntropy,
  mnemonicToSeed,
  UncError,
  uncDerivationPath,
  validateMnemonic,
} from '@unc/core';
import { Command } from 'commander';
import { askLine, ctxOf, readPassword } from '../context.js';
import { checkKeyName } from '../keyring.js';

function accountIndex(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 31)
    throw new UncError('BAD_INDEX', `invalid account index "${text}"`);
  return n;
}

export function keysCommand(): Command {
  const keys = new Command('keys').description('manage the keys in the keyring');

  keys
    .command('add <name>')
    .description('create a new key from a fresh 24-word mnemonic (shown once) and store it encrypted')
    .option('--password-file <file>', 'read the keystore password from a file instead of a prompt')
    .option('--index <n>', 'account index in the derivation path', '0')
    .action(async (name: string, opts: { passwordFile?: string; index: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      checkKeyName(name);
      const keyring = ctx.keyring();
      if (keyring.has(name)) throw new UncError('KEY_EXISTS', `a key named "${name}" already exists`);
      const index = accountIndex(opts.index);
      const password = await readPassword(opts, 'Password for the new key: ', true);
      const mnemonic = mnemonicFromEntropy(randomBytes(32));
      const seed = deriveEd25519(mnemonicToSeed(mnemonic), uncDerivationPath(index)).key;
      const info = keyring.addEncrypted(name, seed, password);
      ctx.print({ ...info, mnemonic, path: uncDerivationPath(index) }, () =>
        [
          `Created key "${name}"`,
          `  address  ${info.address}`,
          `  path     ${uncDerivationPath(index)}`,
          '',
          'Write down this mnemonic and keep it safe. It is the only way to recover the key,',
          'and it will not be shown again:',
          '',
          `  ${mnemonic}`,
        ].join('\n'),
      );
    });

  keys
    .command('import <name>')
    .description('import a key from its BIP-39 mnemonic (prompted, or --mnemonic-file)')
    .option('--mnemonic-file <file>', 'read the mnemonic from a file')
    .option('--password-file <file>', 'read the keystore password from a file instead of a prompt')
    .option('--index <n>', 'account index in the derivation path', '0')
    .action(
      async (
        name: string,
        opts: { mnemonicFile?: string; passwordFile?: string; index: string },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        checkKeyName(name);
        const keyring = ctx.keyring();
        if (keyring.has(name)) throw new UncError('KEY_EXISTS', `a key named "${name}" already exists`);
        const index = accountIndex(opts.index);
        let mnemonic: string;
        if (opts.mnemonicFile) {
          if (!existsSync(opts.mnemonicFile))
            throw new UncError('BAD_FILE', `${opts.mnemonicFile} does not exist`);
          mnemonic = readFileSync(opts.mnemonicFile, 'utf8').trim();
        } else {
          if (!process.stdin.isTTY) {
            throw new UncError(
              'MNEMONIC_REQUIRED',
              'no terminal to ask for the mnemonic: pass --mnemonic-file <file>',
            );
          }
          mnemonic = (await askLine('Mnemonic: ')).trim();
        }
        if (!validateMnemonic(mnemonic)) {
          throw new UncError(
            'BAD_MNEMONIC',
            'invalid mnemonic: check the words and their order (BIP-39 English)',
          );
        }
        const password = await readPassword(opts, 'Password for the imported key: ', true);
        const seed = deriveEd25519(mnemonicToSeed(mnemonic), uncDerivationPath(index)).key;
        const info = keyring.addEncrypted(name, seed, password);
        ctx.print(info, () => `Imported key "${name}": ${info.address}`);
      },
    );

  keys
    .command('list')
    .description('list the keys in the keyring')
    .action((_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const list = ctx.keyring().list();
      ctx.print(list, () =>
        list.length === 0
          ? `no keys in ${ctx.keyring().dir} (create one with: unc keys add <name>)`
          : list
              .map(
                (k) => `${k.name.padEnd(12)} ${k.address}  ${k.kind === 'test' ? '(dev, unencrypted)' : ''}`,
              )
              .join('\n'),
      );
    });

  keys
    .command('show <name>')
    .description("show a key's address and public key")
    .action((name: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const info = ctx.keyring().info(name);
      ctx.print(
        info,
        () =>
          `name       ${info.name}\naddress    ${info.address}\npublic key ${info.publicKey}\nkind       ${info.kind}`,
      );
    });

  return keys;
}
