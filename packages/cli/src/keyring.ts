/**
 * The keyring: one JSON file per key under `<home>/keyring/`. Keys are encrypted keystores
 * (scrypt + AES-256-GCM). The only unencrypted kind is `test`, written by `unc dev` for the
 * public dev accounts, and it is refused for any chain that is not a dev chain.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  addressFromPublicKey,
  DEFAULT_SCRYPT_PARAMS,
  decryptKeystore,
  ed25519PublicKey,
  encodeAddress,
  encryptKeystore,
  fromHex,
  type KeystoreFile,
  type ScryptParams,
  toHex,
  UncError,
} from '@unc/core';
import {
  devAccounts,
  devGovernanceKey,
  fsyncDirectory,
  removeWholeLeftoversIn,
  writeFileWhole,
} from '@unc/node';
import { checkHome, makeHome } from './home.js';

/**
 * Whether `chainId` names a dev chain (`unc-dev-…`): the one rule for where the public dev keys may
 * sign (the keyring) and software dev chips may run (`--dev-chips`), so the two cannot drift apart.
 */
export function isDevChainId(chainId: unknown): boolean {
  return typeof chainId === 'string' && chainId.startsWith('unc-dev-');
}
export interface KeyInfo {
  name: string;
  address: string;
  publicKey: string;
  kind: 'encrypted' | 'test';
}

type KeyFile =
  | (KeyInfo & { kind: 'encrypted'; keystore: KeystoreFile })
  | (KeyInfo & { kind: 'test'; chainId: string; secret: string });

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function isKeyName(text: string): boolean {
  return NAME_RE.test(text);
}

export function checkKeyName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new UncError(
      'BAD_KEY_NAME',
      `invalid key name "${name}": use 1-64 letters, digits, '_', '.' or '-'`,
    );
  }
}

/**
 * The scrypt parameters an imported keystore is encrypted again under, or null to keep it as it
 * came. Scrypt's memory grows with n·r and its time with n·r·p, and a guesser pays both per guess.
 * One whose n·r is at least ours costs at least ours in both (p ≥ 1 = ours) and is kept. Any other
 * gets our n and r and a p raised until its time is at least what it had: re-encrypted with ours
 * alone, one of n = 2^20, r = 1 (4 times our memory and time) or of p = 16 was made cheaper to
 * guess by the very step meant to harden it. Never weaker than the keystore that came nor than
 * ours, in memory or in time; within the keystore format's bounds (n·r < 2^18 and p ≤ 16 give
 * p < 16 here).
 */
export function strongerScryptParams(params: ScryptParams): ScryptParams | null {
  const ours = DEFAULT_SCRYPT_PARAMS;
  const memory = params.n * params.r;
  if (memory >= ours.n * ours.r) return null;
  const p = Math.max(ours.p, Math.ceil((memory * params.p) / (ours.n * ours.r)));
  return { n: ours.n, r: ours.r, p };
}

export class Keyring {
  readonly dir: string;
  constructor(private readonly home: string) {
    this.dir = join(home, 'keyring');
    // The home's rule for its keyring folder as well: one that others own or can write lets them
    // replace a key file (a test key for a chain of theirs, an address of theirs to send to).
    checkHome(this.dir, 'keyring folder');
    // The temporary files of key writes a kill interrupted (`<key>.json.<12 hex>.tmp`): each is a
    // whole copy of a key, the unencrypted seed of a dev key or a keystore, at a name nobody looks
    // after, and a key being added leaves one with no `<key>.json` beside it. Removed where the
    // keyring is opened, by every command that reads or writes a key, once it passed the check.
    removeWholeLeftoversIn(this.dir, (file) => file.endsWith('.json') && NAME_RE.test(file.slice(0, -5)));
  }

  private path(name: string): string {
    checkKeyName(name);
    return join(this.dir, `${name}.json`);
  }

  has(name: string): boolean {
    return existsSync(this.path(name));
  }

  private read(name: string): KeyFile {
    const path = this.path(name);
    if (!existsSync(path)) {
      throw new UncError('NO_SUCH_KEY', `no key named "${name}" in ${this.dir} (see: unc keys list)`);
    }
    return JSON.parse(readFileSync(path, 'utf8')) as KeyFile;
  }

  private write(file: KeyFile, overwrite = false): void {
    const path = this.path(file.name);
    if (!overwrite && existsSync(path)) {
      throw new UncError('KEY_EXISTS', `a key named "${file.name}" already exists in ${this.dir}`);
    }
    makeHome(this.home);
    makeHome(this.dir, 'keyring folder');
    writeFileWhole(path, `${JSON.stringify(file, null, 2)}\n`);
  }

  addEncrypted(name: string, seed: Uint8Array, password: string): KeyInfo {
    const publicKey = ed25519PublicKey(seed);
    const info: KeyInfo = {
      name,
      address: encodeAddress(addressFromPublicKey(publicKey)),
      publicKey: toHex(publicKey),
      kind: 'encrypted',
    };
    const keystore = encryptKeystore(seed, password, { salt: randomBytes(32), iv: randomBytes(12) });
    this.write({ ...info, kind: 'encrypted', keystore });
    return info;
  }

  /**
   * Dev chains only: an unencrypted key bound to one chain id. It replaces a dev key of the same
   * name (a fresh dev chain's id), never a key of the user's: `unc dev` writes dev0…dev9 and
   * governance into the default home every command shares, and overwriting an encrypted key there
   * destroyed it for good (its seed is nowhere else unless the user kept the mnemonic).
   */
  addTest(name: string, seed: Uint8Array, chainId: string): KeyInfo {
    if (this.has(name) && this.read(name).kind !== 'test')
      throw new UncError(
        'KEY_EXISTS',
        `the keyring ${this.dir} holds your own key "${name}", a name the dev chain uses for its public dev key: rename it (unc keys rename ${name} NEW) or give unc dev another --home`,
      );
    const publicKey = ed25519PublicKey(seed);
    const info: KeyInfo = {
      name,
      address: encodeAddress(addressFromPublicKey(publicKey)),
      publicKey: toHex(publicKey),
      kind: 'test',
    };
    this.write({ ...info, kind: 'test', chainId, secret: toHex(seed) }, true);
    return info;
  }

  /**
   * The public dev keys, dev0…dev9 and governance, bound to `chainId`: what `unc dev` and
   * `unc testnet` (whose genesis funds the same accounts) give the home they run in, so that the
   * README's `--from dev0` works on either. Only for a dev chain id (`unc-dev-…`): their seeds are
   * public, so bound to another chain (a genesis in the folder edited to a real network's id) they
   * would sign there for anyone. All or nothing: a name held by the user's own key refuses them
   * all before any is written, and the message names `command`, the one to give another --home.
   */
  addDevKeys(chainId: string, command = 'unc dev'): void {
    if (!isDevChainId(chainId))
      throw new UncError(
        'NOT_A_DEV_CHAIN',
        `the chain id "${chainId}" is not a dev chain's (unc-dev-…): the public dev keys are not put in the keyring for it`,
      );
    this.checkDevKeys(command);
    for (const k of [...devAccounts(), devGovernanceKey()]) this.addTest(k.name, k.seed, chainId);
  }

  /**
   * addDevKeys' name check alone (KEY_EXISTS where a dev key's name holds the user's own key), for
   * a command to run before it makes anything: `unc testnet` made its validators' homes first, and
   * the run after the user renamed the key stopped at ALREADY_INITIALISED until --reset.
   */
  checkDevKeys(command = 'unc dev'): void {
    for (const { name } of [...devAccounts(), devGovernanceKey()])
      if (this.has(name) && this.read(name).kind !== 'test')
        throw new UncError(
          'KEY_EXISTS',
          `the keyring ${this.dir} holds your own key "${name}", a name ${command} uses for its public dev key: rename it (unc keys rename ${name} NEW) or give ${command} another --home`,
        );
  }

  info(name: string): KeyInfo {
    const { address, publicKey, kind } = this.read(name);
    return { name, address, publicKey, kind };
  }

  list(): KeyInfo[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5))
      .filter((n) => NAME_RE.test(n))
      .sort()
      .map((n) => this.info(n));
  }

  /** The keys that hold `address`, e.g. to warn before importing a key a second time. */
  namesOf(address: string): string[] {
    return this.list()
      .filter((k) => k.address === address)
      .map((k) => k.name);
  }

  /**
   * Adds a keystore exported by `unc keys export` or another wallet (still encrypted; its password
   * is kept). One whose scrypt is lighter than ours (the keystore format accepts n down to 2^10)
   * is encrypted again under the same password with a fresh salt and iv and the parameters of
   * strongerScryptParams: kept as it came, every copy of the keyring held the key behind a password
   * check 32 times cheaper to guess than that of the keys made here. One at least as strong is
   * kept as it is.
   */
  addKeystore(
    name: string,
    keystore: KeystoreFile,
    password: string,
    beforeWrite: (address: string) => void = () => {},
  ): KeyInfo {
    const seed = decryptKeystore(keystore, password);
    const publicKey = ed25519PublicKey(seed);
    const info: KeyInfo = {
      name,
      address: encodeAddress(addressFromPublicKey(publicKey)),
      publicKey: toHex(publicKey),
      kind: 'encrypted',
    };
    const stronger = strongerScryptParams(keystore.crypto.kdfparams);
    const stored = stronger
      ? encryptKeystore(seed, password, { salt: randomBytes(32), iv: randomBytes(12) }, stronger)
      : keystore;
    beforeWrite(info.address);
    this.write({ ...info, kind: 'encrypted', keystore: stored });
    return info;
  }

  /** The encrypted keystore of a key, as `unc keys export` writes it; dev keys have none. */
  exportKeystore(name: string): KeystoreFile {
    const file = this.read(name);
    if (file.kind !== 'encrypted') {
      throw new UncError(
        'NOT_EXPORTABLE',
        `key "${name}" is an unencrypted dev key; its seed comes from the public dev mnemonic (unc dev prints it)`,
      );
    }
    return file.keystore;
  }

  delete(name: string): KeyInfo {
    const info = this.info(name);
    rmSync(this.path(name));
    // Synced: a power loss must not bring back a key the user deleted.
    fsyncDirectory(this.dir);
    return info;
  }

  rename(from: string, to: string): KeyInfo {
    const file = this.read(from);
    const target = this.path(to);
    if (existsSync(target))
      throw new UncError('KEY_EXISTS', `a key named "${to}" already exists in ${this.dir}`);
    // Write the new name into the file first, then move it: no moment with two keys or none. The
    // file is replaced whole (writeFileWhole): rewritten in place, a full disk or a crash mid-write
    // left it empty or cut, and an encrypted key with it, for good.
    writeFileWhole(this.path(from), `${JSON.stringify({ ...file, name: to }, null, 2)}\n`);
    renameSync(this.path(from), target);
    // Synced: a power loss must not bring back the old name the user was told is gone.
    fsyncDirectory(this.dir);
    return this.info(to);
  }

  needsPassword(name: string): boolean {
    return this.read(name).kind === 'encrypted';
  }

  /**
   * Returns the key's seed. `chainId` guards test keys against use outside their dev chain. The
   * seed must be that of the public key the file names: `keys show`, `keys list` and every
   * `--to <key name>` give that key's address, read from the file in the clear, while the seed
   * signs; a file whose address was edited (or a keystore swapped under it) had funds sent to one
   * account and transactions signed by another.
   */
  unlock(name: string, chainId: string, password?: string): Uint8Array {
    const file = this.read(name);
    let seed: Uint8Array;
    if (file.kind === 'test') {
      if (file.chainId !== chainId) {
        throw new UncError(
          'TEST_KEY_REFUSED',
          `key "${name}" is an unencrypted dev key for chain ${file.chainId}; refusing to use it on ${chainId}`,
        );
      }
      // Bound to a chain that is not a dev chain (written before addDevKeys refused that, from a
      // genesis edited to a real network's id, or by hand): its seed is public or lies unencrypted
      // on disk, and it would sign on that network for anyone who has it.
      if (!isDevChainId(chainId))
        throw new UncError(
          'NOT_A_DEV_CHAIN',
          `key "${name}" is an unencrypted dev key, and ${chainId} is not a dev chain (unc-dev-…): refusing to sign with it (import your own key: unc keys add or unc keys import)`,
        );
      seed = fromHex(file.secret, 32);
    } else {
      if (password === undefined) throw new UncError('PASSWORD_REQUIRED', `key "${name}" needs its password`);
      seed = decryptKeystore(file.keystore, password);
    }
    const publicKey = ed25519PublicKey(seed);
    if (
      toHex(publicKey) !== file.publicKey ||
      encodeAddress(addressFromPublicKey(publicKey)) !== file.address
    ) {
      seed.fill(0);
      throw new UncError(
        'KEY_MISMATCH',
        `key "${name}" in ${this.dir} names ${file.address} but its secret is the key of another address: the file was edited; nothing was signed (import the key again from its mnemonic or keystore)`,
      );
    }
    return seed;
  }
}
