/**
 * The private validator's state on disk. The consensus machine signs inside `handle()`; the driver
 * writes this file (fsynced, then renamed over the old one) before any signature it produced is
 * sent, so a validator killed at any point restarts knowing every slot it signed and cannot sign a
 * second, different message for one of them. The last proposal it signed is kept with its block:
 * a restarted sole validator may hold the only precommit for that block and must be able to
 * present the block again.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type Block,
  blockCodec,
  type Commit,
  commitCodec,
  decode,
  encode,
  fromHex,
  type PrivValidatorState,
  type Proposal,
  proposalCodec,
  toHex,
  voteCodec,
} from '@unc/core';
import { encodeBlock } from '../block-bytes.js';

export interface SignedProposalRecord {
  proposal: Proposal;
  block: Block;
  lastCommit: Commit;
}

export interface PrivValidatorFile {
  /** The validator key this state belongs to (hex), so a swapped key is noticed. */
  publicKey: string;
  state: PrivValidatorState;
  lastProposal: SignedProposalRecord | null;
}

interface Json {
  publicKey: string;
  height: string;
  round: number;
  step: number;
  signBytes: string | null;
  signature: string | null;
  lock: string | null;
  votes: string[];
  lastProposal: { proposal: string; block: string; lastCommit: string } | null;
}

/**
 * The encodings of the last proposal's block and last commit, kept per object: the file is
 * rewritten at every signature (each vote), and re-encoding a proposal's whole block (megabytes of
 * hex under load) for each of them held the main thread for tens of milliseconds a vote. They are
 * keyed by the block and commit objects themselves, not by the record that holds them, so a record
 * pointed at another block (or a new record) is encoded afresh; blocks and commits are never
 * changed in place once made. The proposal itself, the signed part, is small and is encoded at
 * every write: the file must hold exactly what was signed even if a record is reused.
 */
const encodedBlocks = new WeakMap<Block, string>();
const encodedCommits = new WeakMap<Commit, string>();

function keptHex<T extends object>(kept: WeakMap<T, string>, value: T, encodeHex: (v: T) => string): string {
  let hex = kept.get(value);
  if (hex === undefined) {
    hex = encodeHex(value);
    kept.set(value, hex);
  }
  return hex;
}

function encodeProposalRecord(r: SignedProposalRecord): Json['lastProposal'] {
  return {
    proposal: toHex(encode(proposalCodec, r.proposal)),
    block: keptHex(encodedBlocks, r.block, (b) => toHex(encodeBlock(b))),
    lastCommit: keptHex(encodedCommits, r.lastCommit, (c) => toHex(encode(commitCodec, c))),
  };
}

export function serializePrivval(f: PrivValidatorFile): string {
  const s = f.state;
  const json: Json = {
    publicKey: f.publicKey,
    height: s.height.toString(),
    round: s.round,
    step: s.step,
    signBytes: s.signBytes ? toHex(s.signBytes) : null,
    signature: s.signature ? toHex(s.signature) : null,
    lock: s.lock ? toHex(encode(voteCodec, s.lock)) : null,
    votes: s.votes.map((v) => toHex(encode(voteCodec, v))),
    lastProposal: f.lastProposal ? encodeProposalRecord(f.lastProposal) : null,
  };
  return `${JSON.stringify(json, null, 1)}\n`;
}

export function parsePrivval(text: string): PrivValidatorFile {
  const j = JSON.parse(text) as Json;
  if (typeof j !== 'object' || j === null || typeof j.publicKey !== 'string' || !/^\d+$/.test(j.height)) {
    throw new Error('not a private validator state file');
  }
  return {
    publicKey: j.publicKey,
    state: {
      height: BigInt(j.height),
      round: j.round,
      step: j.step,
      signBytes: j.signBytes ? fromHex(j.signBytes) : null,
      signature: j.signature ? fromHex(j.signature, 64) : null,
      lock: j.lock ? decode(voteCodec, fromHex(j.lock)) : null,
      votes: j.votes.map((v) => decode(voteCodec, fromHex(v))),
    },
    lastProposal: j.lastProposal
      ? {
          proposal: decode(proposalCodec, fromHex(j.lastProposal.proposal)),
          block: decode(blockCodec, fromHex(j.lastProposal.block)),
          lastCommit: decode(commitCodec, fromHex(j.lastProposal.lastCommit)),
        }
      : null,
  };
}

/** Where the signer state lives: a file for a real node, memory that survives "crashes" in the simulator. */
export interface PrivvalStorage {
  /** Names the storage in errors. */
  readonly where: string;
  /** The stored text, or null if nothing was ever written. */
  read(): string | null;
  /** Durable before it returns. */
  write(text: string): void;
}

export function filePrivvalStorage(path: string): PrivvalStorage {
  return {
    where: path,
    read: () => (existsSync(path) ? readFileSync(path, 'utf8') : null),
    write: (text) => savePrivval(path, text),
  };
}

/** The stored state, or null when the validator never signed anything with this data directory. */
export function loadPrivval(path: string, publicKey: Uint8Array): PrivValidatorFile | null {
  return loadPrivvalFrom(filePrivvalStorage(path), publicKey);
}

export function loadPrivvalFrom(storage: PrivvalStorage, publicKey: Uint8Array): PrivValidatorFile | null {
  const path = storage.where;
  const text = storage.read();
  if (text === null) return null;
  let file: PrivValidatorFile;
  try {
    file = parsePrivval(text);
  } catch (err) {
    // Starting over would forget what was signed: refuse, and let the operator decide.
    throw new Error(`${path} is unreadable (${(err as Error).message}); refusing to sign without it`);
  }
  if (file.publicKey !== toHex(publicKey)) {
    throw new Error(`${path} belongs to validator ${file.publicKey}, not ${toHex(publicKey)}`);
  }
  return file;
}

/** Durable before it returns: written to a temporary file, fsynced, renamed over the old one. */
export function savePrivval(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  // The rename itself must survive a power loss too.
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
