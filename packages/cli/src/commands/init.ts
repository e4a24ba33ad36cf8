/**
 * `unc init`: a node's home — its network identity (node key), its consensus key (the validator
 * key, config/validator_key.json) and its config. The keys are plain 32-byte Ed25519 seeds in files
 * readable only by their owner, like the node and validator keys of other BFT chains: a node must
 * sign without a person at the keyboard.
 *
 * The consensus key is always a key of its own (PROTOCOL.md §6): never derived from the mnemonic
 * of the account that holds the UNC and owns the chips, which stays on the operator's wallet
 * machine. `unc consensus-key` signs the proof of possession that account registers with
 * `unc tx bond --consensus-key`; the proof is public and safe to copy.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import {
  consensusKeyMessage,
  decodeAddress,
  ed25519PublicKey,
  ed25519Sign,
  fromHex,
  toHex,
  UncError,
} from '@unc/core';
import {
  fsyncDirectory,
  peerIdFromNodeKey,
  readPrivateKeyFile,
  removeWholeLeftovers,
  writeFileWhole,
} from '@unc/node';
import { Command } from 'commander';
import { checkHome, ctxOf } from '../context.js';

export interface NodeHomeInfo {
  home: string;
  moniker: string;
  peerId: string;
  validatorPublicKey: string;
}

export interface NodeKeys {
  nodeKey: Uint8Array;
  validatorSeed: Uint8Array;
  moniker: string;
}

export function configDir(home: string): string {
  return join(home, 'config');
}

const NODE_KEY = 'node_key.json';
const VALIDATOR_KEY = 'validator_key.json';
const NODE_CONFIG = 'node.json';

function checkMoniker(moniker: string): string {
  if (!/^[\w.-]{1,64}$/.test(moniker)) {
    throw new UncError('BAD_MONIKER', `invalid moniker "${moniker}": 1-64 letters, digits, '.', '_' or '-'`);
  }
  return moniker;
}

/**
 * Creates the keys and config of a node home; refuses to overwrite existing keys. `validatorSeed`
 * gives the consensus key (tests and dev chains pass a well-known one); by default it is random.
 */
export async function initHome(
  home: string,
  moniker: string,
  validatorSeed: Uint8Array = randomBytes(32),
): Promise<NodeHomeInfo> {
  checkMoniker(moniker);
  const dir = configDir(home);
  // Nothing made in a home, or a config folder, that checkHome refuses (checked again once made).
  checkHome(home);
  checkHome(dir, 'config folder');
  for (const f of [NODE_KEY, VALIDATOR_KEY]) {
    if (existsSync(join(dir, f))) {
      throw new UncError('ALREADY_INITIALISED', `${join(dir, f)} exists: this home is already initialised`);
    }
  }
  const nodeKey = randomBytes(32);
  const peerId = await peerIdFromNodeKey(nodeKey);
  const validatorPublicKey = toHex(ed25519PublicKey(validatorSeed));
  // What this init made, undone if any later step fails: a key left behind made the next
  // `unc init` refuse (ALREADY_INITIALISED) until someone deleted it by hand. Only what it
  // created: a file or folder that was there before is never removed.
  const made: string[] = [];
  const firstDir = mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The folders mkdirSync created, deepest first: `dir` up to `firstDir` (none if it was there).
  const madeDirs: string[] = [];
  if (firstDir !== undefined)
    for (let d = dir; d.length >= firstDir.length; d = dirname(d)) {
      madeDirs.push(d);
      if (d === firstDir) break;
    }
  try {
    // The command checked the home before it existed, maybe: made meanwhile by someone else, it is
    // refused now, before a key is written into it. Its config folder too, which mkdirSync takes as
    // it finds it: one that was there already, someone else's or writable by others, would have
    // the keys written where they can read, replace or rename them (checkHome checks the home and
    // the folders above it on the way).
    checkHome(home);
    checkHome(dir, 'config folder');
    writeKeyFile(join(dir, NODE_KEY), `${JSON.stringify({ peerId, seed: toHex(nodeKey) }, null, 2)}\n`, made);
    writeKeyFile(
      join(dir, VALIDATOR_KEY),
      `${JSON.stringify({ publicKey: validatorPublicKey, seed: toHex(validatorSeed) }, null, 2)}\n`,
      made,
    );
    // Replaced, not written through: a link planted at node.json (nothing checks for one) sent the
    // write to whatever file it named, which the user could write and now held only this JSON.
    // Its folder's fsync, there, makes the key files' entries durable too.
    writeFileWhole(join(dir, NODE_CONFIG), `${JSON.stringify({ moniker }, null, 2)}\n`, 0o644);
    // The folders made here are entries of their parents, durable only once those are fsynced.
    for (const d of madeDirs) fsyncDirectory(dirname(d));
  } catch (err) {
    // A removal that fails is told with the error, never instead of it: thrown out of here, it
    // hid why the init failed, and the user learned neither that nor which key was left behind.
    const left: string[] = [];
    for (const path of made.reverse()) {
      try {
        rmSync(path, { force: true });
      } catch (cleanup) {
        left.push(`${path} (${(cleanup as Error).message})`);
      }
    }
    // The folders mkdirSync created, deepest first, each only if empty (rmdirSync refuses otherwise).
    for (const d of madeDirs) {
      try {
        rmdirSync(d);
      } catch {
        break;
      }
    }
    if (left.length > 0) {
      const note = `; and what this init wrote could not be removed (remove it by hand): ${left.join(', ')}`;
      if (err instanceof Error) err.message += note;
      else throw new Error(`${String(err)}${note}`);
    }
    throw err;
  }
  return { home, moniker, peerId, validatorPublicKey };
}

/**
 * A key file, created here or not at all: 'wx' (O_CREAT | O_EXCL) fails on anything already at
 * the path, a symlink included, dangling or not. The existsSync check above misses a dangling
 * symlink (it follows it), and a plain write follows it too: one planted in the config dir sent
 * the seed to wherever it pointed, into a file its planter may have created in between, readable
 * by them. Fsynced before it counts as written (a power loss after `unc init` reported the keys
 * could leave them empty: a peer id printed, and a consensus key registered, that no file holds);
 * its path joins `made` once created, so that a failure after it removes it.
 */
function writeKeyFile(path: string, text: string, made: string[]): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new UncError('ALREADY_INITIALISED', `${path} exists: not writing a key over it or through it`);
    throw err;
  }
  made.push(path);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readJson(path: string): Record<string, unknown> {
  if (!existsSync(path)) {
    throw new UncError('NOT_INITIALISED', `${path} does not exist: run \`unc init --home <dir>\` first`);
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new UncError('BAD_CONFIG', `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * A seed of `unc init`'s, from a key file only its owner can read or write (OpenSSH's rule for a
 * private key file). Written 0600, such a file turns 0644 when restored from a backup or copied
 * under the usual umask; every user of the host could then read the consensus key and sign a
 * second vote with it, which slashes the stake bonded behind it, or take the node's peer id.
 * Refused (BAD_KEY_FILE) with the chmod that fixes it, before the seed is read; and a file that is
 * not JSON is refused without the parser's message, which quotes the text around the fault, the
 * seed's hex among it.
 */
function seedFrom(path: string): Uint8Array {
  if (!existsSync(path)) {
    throw new UncError('NOT_INITIALISED', `${path} does not exist: run \`unc init --home <dir>\` first`);
  }
  // Checked and read through one descriptor (readPrivateKeyFile): the bytes parsed are those of
  // the file whose mode and owner passed.
  const text = readPrivateKeyFile(path);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new UncError(
      'BAD_KEY',
      `${path} is not valid JSON (its contents are not shown: it holds a secret key)`,
    );
  }
  try {
    return fromHex(String(j.seed), 32);
  } catch {
    throw new UncError('BAD_KEY', `${path}: "seed" must be 32 bytes of hex`);
  }
}

/** The keys and moniker `unc init` wrote. */
export function loadHome(home: string): NodeKeys {
  const dir = configDir(home);
  // The keys are read from it: one that someone else owns or can write may hold their keys, not the
  // user's (BAD_HOME, as for the home; checkHome walks the folders above as well).
  checkHome(home);
  checkHome(dir, 'config folder');
  // node.json is replaced whole (writeFileWhole): the temporary files of a write a kill interrupted
  // go here, where it is read.
  removeWholeLeftovers(join(dir, NODE_CONFIG));
  const config = readJson(join(dir, NODE_CONFIG));
  return {
    nodeKey: seedFrom(join(dir, NODE_KEY)),
    validatorSeed: seedFrom(join(dir, VALIDATOR_KEY)),
    moniker: typeof config.moniker === 'string' ? config.moniker : 'node',
  };
}

/** What an account registers to name its validator's consensus key (setConsensusKey). */
export interface ConsensusKeyProof {
  publicKey: string;
  account: string;
  chainId: string;
  /** The consensus key's signature of consensusKeyMessage(chainId, account). */
  signature: string;
}

export function consensusKeyProof(seed: Uint8Array, chainId: string, account: string): ConsensusKeyProof {
  const signature = ed25519Sign(seed, consensusKeyMessage(chainId, decodeAddress(account)));
  return { publicKey: toHex(ed25519PublicKey(seed)), account, chainId, signature: toHex(signature) };
}

export function initCommand(): Command {
  return new Command('init')
    .description("create a node's home: node key (peer id), a consensus key of its own, and config")
    .option('--moniker <name>', 'a name for this node', 'node')
    .action(async (opts: { moniker: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const info = await initHome(ctx.home, opts.moniker);
      ctx.print(info, () =>
        [
          `Initialised node "${info.moniker}" in ${info.home}`,
          `  peer id           ${info.peerId}`,
          `  consensus key     ${info.validatorPublicKey}`,
          `  keys              ${configDir(info.home)} (keep them private; back up validator_key.json)`,
          '',
          'No account key belongs on this host. To validate, on this host:',
          `  unc consensus-key --home ${info.home} --account <unc1… of your wallet> --chain-id <id> > consensus-key.json`,
          'then on the machine that holds the account (copy consensus-key.json there; it is public):',
          '  unc tx bond --from <account> --amount <UNC> --consensus-key consensus-key.json',
          'and start the node:',
          `  unc start --home ${info.home} --genesis <genesis.json> --peers <multiaddr,…> --validator`,
        ].join('\n'),
      );
    });
}

export function consensusKeyCommand(): Command {
  return new Command('consensus-key')
    .description(
      "sign the proof that this home's consensus key votes for an account (register it with unc tx bond --consensus-key)",
    )
    .requiredOption('--account <address>', 'the account that bonds and owns the chips (unc1…)')
    .requiredOption('--chain-id <id>', 'the chain the proof is for')
    .action((opts: { account: string; chainId: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      try {
        decodeAddress(opts.account);
      } catch (err) {
        throw new UncError('BAD_ADDRESS', `--account: ${(err as Error).message}`);
      }
      const proof = consensusKeyProof(loadHome(ctx.home).validatorSeed, opts.chainId, opts.account);
      // The proof is the output in both formats: it is meant to be saved to a file.
      ctx.print(proof, () => JSON.stringify(proof, null, 2));
    });
}
