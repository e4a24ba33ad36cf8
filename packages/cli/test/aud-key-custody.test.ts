/**
 * Key custody: the passwords keys are encrypted under, the keystores the keyring keeps, the
 * node's unencrypted key files and the public dev keys (docs/cli.md, docs/operators.md).
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_SCRYPT_PARAMS, encryptKeystore, type KeystoreFile, toHex, UncError } from '@unc/core';
import { initHome, loadHome } from '../src/commands/init.js';
import { refuseDevChipsOffDevChain } from '../src/commands/start.js';
import { readPassword } from '../src/context.js';
import { Keyring } from '../src/keyring.js';
import { runUnc, tempHome } from './helpers.js';

const code = (name: string) => (err: unknown) => err instanceof UncError && err.code === name;

test('attack: a short password from --password-file is refused for a new key, and accepted to unlock an existing one', async () => {
  const home = tempHome();
  try {
    const file = join(home.dir, 'pw');
    writeFileSync(file, '1234567\n', { mode: 0o600 });
    // A new key (keys add, keys import from a mnemonic): the prompt's minimum holds for a file too.
    await assert.rejects(readPassword({ passwordFile: file }, 'new: ', true), code('WEAK_PASSWORD'));
    // Unlocking a key that already has this password (imported from another wallet) is not refused.
    assert.equal(await readPassword({ passwordFile: file }, 'unlock: '), '1234567');
    writeFileSync(file, 'eight ch\n');
    assert.equal(await readPassword({ passwordFile: file }, 'new: ', true), 'eight ch');
    // Through the CLI: nothing is written to the keyring.
    writeFileSync(file, 'pw\n');
    const add = await runUnc(['keys', 'add', 'alice', '--password-file', file, '--home', home.dir]);
    assert.equal(add.code, 1);
    assert.match(add.stderr, /WEAK_PASSWORD/);
    assert.equal(new Keyring(home.dir).has('alice'), false);
  } finally {
    home.cleanup();
  }
});

test('attack: a password, mnemonic or API token file others on the host may read is refused, naming the file and the chmod', async () => {
  if (process.platform === 'win32') return;
  const home = tempHome();
  try {
    const refused = (r: { code: number | null; stderr: string }, file: string) => {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /BAD_SECRET_FILE/);
      assert.ok(r.stderr.includes(`chmod 600 ${file}`), r.stderr);
    };
    const pw = join(home.dir, 'pw');
    writeFileSync(pw, 'correct horse battery\n', { mode: 0o644 });
    chmodSync(pw, 0o644); // whatever the umask
    await assert.rejects(readPassword({ passwordFile: pw }, 'unlock: '), code('BAD_SECRET_FILE'));
    refused(await runUnc(['keys', 'add', 'alice', '--password-file', pw, '--home', home.dir]), pw);
    assert.equal(new Keyring(home.dir).has('alice'), false);
    chmodSync(pw, 0o600);
    const mnemonic = join(home.dir, 'words');
    writeFileSync(mnemonic, 'abandon '.repeat(11) + 'about\n', { mode: 0o640 });
    chmodSync(mnemonic, 0o640);
    refused(
      await runUnc([
        'keys',
        'import',
        'bob',
        '--mnemonic-file',
        mnemonic,
        '--password-file',
        pw,
        '--home',
        home.dir,
      ]),
      mnemonic,
    );
    assert.equal(new Keyring(home.dir).has('bob'), false);
    // Owner-only, the same files are read.
    chmodSync(mnemonic, 0o600);
    const ok = await runUnc([
      'keys',
      'import',
      'bob',
      '--mnemonic-file',
      mnemonic,
      '--password-file',
      pw,
      '--home',
      home.dir,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const token = join(home.dir, 'token');
    writeFileSync(token, 'sesame\n', { mode: 0o604 });
    chmodSync(token, 0o604);
    refused(
      await runUnc([
        'gateway',
        'start',
        '--from',
        'bob',
        '--budget',
        '1',
        '--models',
        'ocr',
        '--api-token-file',
        token,
        '--home',
        home.dir,
      ]),
      token,
    );
  } finally {
    home.cleanup();
  }
});

test('attack: a keystore imported with a light scrypt is kept under our parameters, same password', () => {
  const home = tempHome();
  try {
    const seed = new Uint8Array(32).fill(9);
    const weak = encryptKeystore(
      seed,
      'a password',
      { salt: new Uint8Array(32).fill(1), iv: new Uint8Array(12).fill(2) },
      { n: 2 ** 10, r: 1, p: 1 },
    );
    const keyring = new Keyring(home.dir);
    keyring.addKeystore('imported', weak, 'a password');
    const stored = keyring.exportKeystore('imported');
    assert.equal(stored.crypto.kdfparams.n, DEFAULT_SCRYPT_PARAMS.n);
    assert.equal(stored.crypto.kdfparams.r, DEFAULT_SCRYPT_PARAMS.r);
    assert.notEqual(stored.crypto.kdfparams.salt, weak.crypto.kdfparams.salt, 'a fresh salt');
    assert.notEqual(stored.crypto.cipherparams.iv, weak.crypto.cipherparams.iv, 'a fresh iv');
    assert.deepEqual(keyring.unlock('imported', 'unc-test', 'a password'), seed);
    // One as strong as ours is kept byte for byte.
    const strong = keyring.exportKeystore('imported');
    keyring.addKeystore('again', strong, 'a password');
    assert.deepEqual(keyring.exportKeystore('again'), strong);
  } finally {
    home.cleanup();
  }
});

test('attack: a key file whose address was edited signs nothing (KEY_MISMATCH)', () => {
  const home = tempHome();
  try {
    const keyring = new Keyring(home.dir);
    const mine = keyring.addEncrypted('alice', new Uint8Array(32).fill(3), 'a password');
    const theirs = keyring.addEncrypted('mallory', new Uint8Array(32).fill(4), 'a password');
    const path = join(keyring.dir, 'alice.json');
    const file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    // What `keys show alice` and `--to alice` give is the file's address, in the clear.
    writeFileSync(path, JSON.stringify({ ...file, address: theirs.address, publicKey: theirs.publicKey }));
    assert.equal(keyring.info('alice').address, theirs.address);
    assert.throws(() => keyring.unlock('alice', 'unc-test', 'a password'), code('KEY_MISMATCH'));
    // Its keystore swapped for another key's under the same name: refused too.
    const other = JSON.parse(readFileSync(join(keyring.dir, 'mallory.json'), 'utf8')) as {
      keystore: KeystoreFile;
    };
    writeFileSync(path, JSON.stringify({ ...file, keystore: other.keystore }));
    assert.equal(keyring.info('alice').address, mine.address);
    assert.throws(() => keyring.unlock('alice', 'unc-test', 'a password'), code('KEY_MISMATCH'));
    // A dev key's secret edited under its public key: the same.
    keyring.addTest('dev0', new Uint8Array(32).fill(5), 'unc-dev-1');
    const devPath = join(keyring.dir, 'dev0.json');
    const dev = JSON.parse(readFileSync(devPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(devPath, JSON.stringify({ ...dev, secret: toHex(new Uint8Array(32).fill(6)) }));
    assert.throws(() => keyring.unlock('dev0', 'unc-dev-1'), code('KEY_MISMATCH'));
  } finally {
    home.cleanup();
  }
});

test('attack: a node key file others can read is refused before its seed is used', {
  skip: process.platform === 'win32',
}, async () => {
  const home = tempHome();
  try {
    const dir = join(home.dir, 'node');
    await initHome(dir, 'n0');
    const validatorKey = join(dir, 'config', 'validator_key.json');
    assert.ok(loadHome(dir).validatorSeed.length === 32);
    // Restored from a backup, or copied under the usual umask.
    chmodSync(validatorKey, 0o644);
    assert.throws(
      () => loadHome(dir),
      (err: unknown) => {
        assert.ok(err instanceof UncError && err.code === 'BAD_KEY_FILE');
        assert.match(err.message, /chmod 600/);
        return true;
      },
    );
    chmodSync(validatorKey, 0o600);
    const nodeKey = join(dir, 'config', 'node_key.json');
    chmodSync(nodeKey, 0o640);
    assert.throws(() => loadHome(dir), code('BAD_KEY_FILE'));
    chmodSync(nodeKey, 0o600);
    assert.ok(loadHome(dir).nodeKey.length === 32);
  } finally {
    home.cleanup();
  }
});

test('attack: a key file that is not JSON is refused without quoting its seed', async () => {
  const home = tempHome();
  try {
    const dir = join(home.dir, 'node');
    await initHome(dir, 'n0');
    const validatorKey = join(dir, 'config', 'validator_key.json');
    const seed = 'abcdef4567'.padEnd(64, '0');
    // A hand edit that lost the quotes: the parser's message quoted the text around the fault.
    writeFileSync(validatorKey, `{"publicKey": "aa", "seed": ${seed}}`, { mode: 0o600 });
    assert.throws(
      () => loadHome(dir),
      (err: unknown) => {
        assert.ok(err instanceof UncError && err.code === 'BAD_KEY');
        assert.doesNotMatch(err.message, /abcdef/);
        return true;
      },
    );
  } finally {
    home.cleanup();
  }
});

test('attack: --dev-chips (public dev keys) is refused on a chain that is not a dev chain', async () => {
  assert.throws(() => refuseDevChipsOffDevChain('unc-mainnet-1'), code('NOT_A_DEV_CHAIN'));
  assert.throws(() => refuseDevChipsOffDevChain(undefined), code('NOT_A_DEV_CHAIN'));
  refuseDevChipsOffDevChain('unc-dev-1');
  const home = tempHome();
  try {
    const dir = join(home.dir, 'node');
    await initHome(dir, 'n0');
    const genesis = join(home.dir, 'genesis.json');
    writeFileSync(genesis, JSON.stringify({ chainId: 'unc-mainnet-1' }));
    const start = await runUnc(['start', '--home', dir, '--genesis', genesis, '--dev-chips', '1']);
    assert.equal(start.code, 1);
    assert.match(start.stderr, /NOT_A_DEV_CHAIN/);
  } finally {
    home.cleanup();
  }
});
