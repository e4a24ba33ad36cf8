/**
 * `unc init`: a node's home — its network identity (node key), its consensus key (validator
 * key) and its config. The keys are plain 32-byte Ed25519 seeds in files readable only by their
 * owner, like the node and validator keys of other BFT chains: a node must sign without a person
 * at the keyboard.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  deriveEd25519,
  ed25519PublicKey,
  fromHex,
  mnemonicToSeed,
  toHex,
  UncError,
  uncDerivationPath,
  validateMnemonic,
} from '@unc/core';
import { peerIdFromNodeKey } from '@unc/node';
import { Command } from 'commander';
import { ctxOf, withCommon } from '../context.js';

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
 * gives the validator key (e.g. derived from the operator's mnemonic); by default it is random.
 */
export async function initHome(
  home: string,
  moniker: string,
  validatorSeed: Uint8Array = randomBytes(32),
): Promise<NodeHomeInfo> {
  checkMoniker(moniker);
  const dir = configDir(home);
  for (const f of [NODE_KEY, VALIDATOR_KEY]) {
    if (existsSync(join(dir, f))) {
      throw new UncError('ALREADY_INITIALISED', `${join(dir, f)} exists: this home is already initialised`);
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const nodeKey = randomBytes(32);
  const peerId = await peerIdFromNodeKey(nodeKey);
  const validatorPublicKey = toHex(ed25519PublicKey(validatorSeed));
  writeFileSync(join(dir, NODE_KEY), `${JSON.stringify({ peerId, seed: toHex(nodeKey) }, null, 2)}\n`, {
    mode: 0o600,
  });
  writeFileSync(
    join(dir, VALIDATOR_KEY),
    `${JSON.stringify({ publicKey: validatorPublicKey, seed: toHex(validatorSeed) }, null, 2)}\n`,
    { mode: 0o600 },
  );
  writeFileSync(join(dir, NODE_CONFIG), `${JSON.stringify({ moniker }, null, 2)}\n`);
  return { home, moniker, peerId, validatorPublicKey };
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

function seedFrom(path: string): Uint8Array {
  const j = readJson(path);
  try {
    return fromHex(String(j.seed), 32);
  } catch {
    throw new UncError('BAD_KEY', `${path}: "seed" must be 32 bytes of hex`);
  }
}

/** The keys and moniker `unc init` wrote. */
export function loadHome(home: string): NodeKeys {
  const dir = configDir(home);
  const config = readJson(join(dir, NODE_CONFIG));
  return {
    nodeKey: seedFrom(join(dir, NODE_KEY)),
    validatorSeed: seedFrom(join(dir, VALIDATOR_KEY)),
    moniker: typeof config.moniker === 'string' ? config.moniker : 'node',
  };
}

export function initCommand(): Command {
  return withCommon(
    new Command('init')
      .description("create a node's home: node key (peer id), validator key and config")
      .option('--moniker <name>', 'a name for this node', 'node')
      .option(
        '--mnemonic-file <file>',
        'derive the validator key from this BIP-39 mnemonic (the account that bonds and owns the chips)',
      )
      .option('--index <n>', 'account index in the derivation path, with --mnemonic-file', '0'),
  ).action(async (opts: { moniker: string; mnemonicFile?: string; index: string }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    let seed: Uint8Array | undefined;
    if (opts.mnemonicFile) {
      if (!existsSync(opts.mnemonicFile))
        throw new UncError('BAD_FILE', `${opts.mnemonicFile} does not exist`);
      const mnemonic = readFileSync(opts.mnemonicFile, 'utf8').trim();
      if (!validateMnemonic(mnemonic)) throw new UncError('BAD_MNEMONIC', 'not a valid BIP-39 mnemonic');
      const index = Number(opts.index);
      if (!Number.isInteger(index) || index < 0 || index >= 2 ** 31) {
        throw new UncError('BAD_INDEX', `invalid account index "${opts.index}"`);
      }
      seed = deriveEd25519(mnemonicToSeed(mnemonic), uncDerivationPath(index)).key;
    }
    const info = await initHome(ctx.home, opts.moniker, seed);
    ctx.print(info, () =>
      [
        `Initialised node "${info.moniker}" in ${info.home}`,
        `  peer id           ${info.peerId}`,
        `  validator key     ${info.validatorPublicKey}`,
        `  keys              ${configDir(info.home)} (keep them private; back up validator_key.json)`,
        '',
        'Next: put the validator key in the genesis (or bond it later), then',
        `  unc start --home ${info.home} --genesis <genesis.json> --peers <multiaddr,…> --validator`,
      ].join('\n'),
    );
  });
}
