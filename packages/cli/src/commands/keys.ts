import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  addressFromPublicKey,
  deriveEd25519,
  ed25519PublicKey,
  encodeAddress,
  type KeystoreFile,
  mnemonicFromEntropy,
  mnemonicToSeed,
  UncError,
  uncDerivationPath,
  validateMnemonic,
} from '@unc/core';
import { readSecretFile } from '@unc/node';
import { Command } from 'commander';
import { askSecretLine, ctxOf, examples, readPassword } from '../context.js';
import { checkKeyName, type Keyring } from '../keyring.js';
import { confirm } from '../send.js';

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
    .description(
      'import a key from its BIP-39 mnemonic (prompted, or --mnemonic-file) or from a keystore `unc keys export` wrote',
    )
    .option('--mnemonic-file <file>', 'read the mnemonic from a file')
    .option('--keystore <file>', 'import this encrypted keystore (its password stays the same)')
    .option('--password-file <file>', 'read the keystore password from a file instead of a prompt')
    .option('--index <n>', 'account index in the derivation path', '0')
    .action(
      async (
        name: string,
        opts: { mnemonicFile?: string; keystore?: string; passwordFile?: string; index: string },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        checkKeyName(name);
        const keyring = ctx.keyring();
        if (keyring.has(name)) throw new UncError('KEY_EXISTS', `a key named "${name}" already exists`);
        if (opts.keystore) {
          if (opts.mnemonicFile)
            throw new UncError('BAD_ARGUMENT', 'give --keystore or --mnemonic-file, not both');
          const keystore = readKeystoreFile(opts.keystore);
          const password = await readPassword(opts, `Password of ${opts.keystore}: `);
          const info = keyring.addKeystore(name, keystore, password, warnIfKnown(keyring, name));
          ctx.print(info, () => `Imported key "${name}": ${info.address}`);
          return;
        }
        const index = accountIndex(opts.index);
        let mnemonic: string;
        if (opts.mnemonicFile) {
          if (!existsSync(opts.mnemonicFile))
            throw new UncError('BAD_FILE', `${opts.mnemonicFile} does not exist`);
          mnemonic = readSecretFile(opts.mnemonicFile, 'a mnemonic').trim();
        } else {
          if (!process.stdin.isTTY) {
            throw new UncError(
              'MNEMONIC_REQUIRED',
              'no terminal to ask for the mnemonic: pass --mnemonic-file <file>',
            );
          }
          // Not echoed: the words are the key.
          mnemonic = (await askSecretLine('Mnemonic (not shown as you type): ')).trim();
        }
        if (!validateMnemonic(mnemonic)) {
          throw new UncError(
            'BAD_MNEMONIC',
            'invalid mnemonic: check the words and their order (BIP-39 English)',
          );
        }
        const password = await readPassword(opts, 'Password for the imported key: ', true);
        const seed = deriveEd25519(mnemonicToSeed(mnemonic), uncDerivationPath(index)).key;
        warnIfKnown(keyring, name)(encodeAddress(addressFromPublicKey(ed25519PublicKey(seed))));
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

  keys
    .command('delete <name>')
    .description('remove a key from the keyring (asks first; without its mnemonic or an export it is gone)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const keyring = ctx.keyring();
      const info = keyring.info(name);
      await confirm([`Delete key "${name}" (${info.address}) from ${keyring.dir}`], {
        yes: ctx.yes,
        interactive: process.stdin.isTTY === true,
        action: 'delete it',
      });
      keyring.delete(name);
      ctx.print({ deleted: info }, () => `Deleted key "${name}" (${info.address})`);
    });

  keys
    .command('rename <name> <new-name>')
    .description('give a key another name')
    .action((name: string, newName: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const info = ctx.keyring().rename(name, newName);
      ctx.print(info, () => `Renamed key "${name}" to "${newName}" (${info.address})`);
    });

  keys
    .command('export <name>')
    .description('write the key as its encrypted keystore (JSON), for `unc keys import --keystore` elsewhere')
    .option('--out <file>', 'write it to this file (created with mode 600) instead of stdout')
    .addHelpText(
      'after',
      examples([
        'unc keys export alice --out alice.keystore.json',
        'unc keys import alice --keystore alice.keystore.json',
      ]),
    )
    .action((name: string, opts: { out?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const keystore = ctx.keyring().exportKeystore(name);
      const text = `${JSON.stringify(keystore, null, 2)}\n`;
      if (!opts.out) {
        process.stdout.write(text);
        return;
      }
      // 'wx' (O_CREAT | O_EXCL) creates the file or fails, in one step: an existsSync check first
      // would miss a dangling symlink planted there and the write would follow it.
      try {
        writeFileSync(opts.out, text, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST')
          throw new UncError('FILE_EXISTS', `${opts.out} exists: not overwriting it`);
        throw err;
      }
      console.error(`wrote the encrypted keystore of "${name}" to ${opts.out}`);
    });

  return keys;
}

/** A keystore file from `unc keys export` (its contents are checked when it is decrypted). */
function readKeystoreFile(path: string): KeystoreFile {
  if (!existsSync(path)) throw new UncError('BAD_FILE', `${path} does not exist`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as KeystoreFile;
  } catch (err) {
    throw new UncError('BAD_FILE', `${path} is not JSON: ${(err as Error).message}`);
  }
}

/** Importing a key the keyring already holds under another name is allowed, but said. */
function warnIfKnown(keyring: Keyring, name: string): (address: string) => void {
  return (address) => {
    const known = keyring.namesOf(address);
    if (known.length > 0)
      console.error(
        `warning: ${address} is already in the keyring as ${known.map((n) => `"${n}"`).join(', ')}; adding it again as "${name}"`,
      );
  };
}
