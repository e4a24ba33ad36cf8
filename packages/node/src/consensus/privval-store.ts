/**
 * The private validator's state on disk. The consensus machine signs inside `handle()`; the driver
 * writes this file (fsynced, then renamed over the old one) before any signature it produced is
 * sent, so a validator killed at any point restarts knowing every slot it signed and cannot sign a
 * second, different message for one of them. The last proposal it signed is kept with its block:
 * a restarted sole validator may hold the only precommit for that block and must be able to
 * present the block again.
 *
 * That block (a megabyte for 5,000 transfers) is not in the state file but in a record file of
 * its own, named by the hash of its bytes and written once per proposal: the state file is
 * rewritten at each of the three signatures of a height (proposal, prevote, precommit), and
 * rewriting the block in hex each time, fsynced, cost the proposer ~6% of its main thread under
 * load. The order of the writes is what keeps a crash at any point safe (`storePrivval`): the
 * record first, then the state that names it, then the older records are deleted; a restart reads
 * a state file whose record is always there.
 */
import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  type Block,
  blockCodec,
  bytes,
  type Commit,
  commitCodec,
  decode,
  encode,
  fromHex,
  MAX_SIGN_STEP,
  type PrivValidatorState,
  type Proposal,
  proposalCodec,
  sha256,
  struct,
  toHex,
  voteCodec,
} from '@unc/core';
import { blockParts, encodeBlock, writeU32 } from '../block-bytes.js';
import { isWholeFileTemp, writeFileWhole } from '../storage/write-whole.js';

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
  /**
   * The signed proposal, and the name of the record file that holds its block and last commit.
   * Files written before records existed hold the block and last commit here, in hex; they are
   * still read.
   */
  lastProposal:
    | { proposal: string; record: string }
    | { proposal: string; block: string; lastCommit: string }
    | null;
}

/** A record file's bytes: the proposed block and the last commit it was proposed with. */
const proposalRecordCodec = struct<{ block: Uint8Array; lastCommit: Uint8Array }>('PrivvalProposalRecord', {
  block: bytes(0xffff_ffff, 'block'),
  lastCommit: bytes(0xffff_ffff, 'lastCommit'),
});

/** A record file: its bytes and its name, the hex of their hash (a restart checks one against the other). */
export interface ProposalRecordBytes {
  name: string;
  bytes: Uint8Array;
}

/**
 * The record of a block and last commit, kept per block object (with the commit it was made
 * with): a proposal's block is encoded and hashed once, not at each of the height's signatures. A
 * block or commit swapped for another object is encoded afresh; blocks and commits are never
 * changed in place once made.
 */
const keptRecords = new WeakMap<Block, { lastCommit: Commit; record: ProposalRecordBytes }>();

export function proposalRecordBytes(r: SignedProposalRecord): ProposalRecordBytes {
  const kept = keptRecords.get(r.block);
  if (kept && kept.lastCommit === r.lastCommit) return kept.record;
  const bytes = recordEncoding(r.block, r.lastCommit);
  const record = { name: toHex(sha256(bytes)), bytes };
  keptRecords.set(r.block, { lastCommit: r.lastCommit, record });
  return record;
}

/**
 * `encode(proposalRecordCodec, { block: encodeBlock(block), lastCommit: encode(commitCodec,
 * lastCommit) })`, assembled in one array of the exact size: the block's bytes were joined into
 * a megabyte array of their own and then copied through a growing writer, three fresh buffers
 * the size of the block per proposal (test/privval-store.test.ts compares the two).
 */
export function recordEncoding(block: Block, lastCommit: Commit): Uint8Array {
  const parts = blockParts(block);
  const commit = encode(commitCodec, lastCommit);
  const blockLength = parts[0].length + parts[1].length + parts[2].length;
  // Both fields are `bytes(0xffff_ffff)`: a length the u32 prefix cannot hold is the codec's error.
  if (blockLength > 0xffff_ffff)
    return encode(proposalRecordCodec, { block: encodeBlock(block), lastCommit: commit });
  const out = new Uint8Array(4 + blockLength + 4 + commit.length);
  let at = writeU32(out, 0, blockLength);
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  at = writeU32(out, at, commit.length);
  out.set(commit, at);
  return out;
}

function decodeProposalRecord(bytes: Uint8Array): { block: Block; lastCommit: Commit } {
  const r = decode(proposalRecordCodec, bytes);
  return { block: decode(blockCodec, r.block), lastCommit: decode(commitCodec, r.lastCommit) };
}

/**
 * The state file's text. The proposal itself, the signed part, is small and is encoded at every
 * write: the file must hold exactly what was signed even if a record object is reused.
 */
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
    lastProposal: f.lastProposal
      ? {
          proposal: toHex(encode(proposalCodec, f.lastProposal.proposal)),
          record: proposalRecordBytes(f.lastProposal).name,
        }
      : null,
  };
  return `${JSON.stringify(json, null, 1)}\n`;
}

/**
 * Reads a state file's text; `readRecord` gives the bytes of a record file by name (null if there
 * is none). A named record that is missing or whose bytes do not hash to its name makes the file
 * unreadable: the node refuses to sign rather than forget the block it proposed.
 */
export function parsePrivval(
  text: string,
  readRecord: (name: string) => Uint8Array | null,
): PrivValidatorFile {
  const j = JSON.parse(text) as Json;
  if (typeof j !== 'object' || j === null || typeof j.publicKey !== 'string' || !/^\d+$/.test(j.height)) {
    throw new Error('not a private validator state file');
  }
  // The slot (height, round, step) is what the signer compares every later message against: a
  // round or step that is missing, null or not a small integer made that comparison NaN (neither
  // "earlier" nor "the same") or wrong (null counts as 0), so the restored signer signed again at
  // the height, a second vote for a slot it had voted in among them. A file the operator edited (the
  // missing-record error below invites it) or damaged is refused instead.
  if (!Number.isSafeInteger(j.round) || j.round < 0)
    throw new Error(`"round" must be a non-negative integer, not ${JSON.stringify(j.round)}`);
  if (!Number.isSafeInteger(j.step) || j.step < 0 || j.step > MAX_SIGN_STEP)
    throw new Error(`"step" must be an integer from 0 to ${MAX_SIGN_STEP}, not ${JSON.stringify(j.step)}`);
  if (!Array.isArray(j.votes)) throw new Error('"votes" must be a list');
  // The lock is what keeps a restarted validator from prevoting another block than the one it
  // precommitted at the height: missing (or "", or false), it read as no lock at all.
  if (j.lock !== null && typeof j.lock !== 'string') throw new Error('"lock" must be a vote or null');
  const height = BigInt(j.height);
  const lock = j.lock === null ? null : decode(voteCodec, fromHex(j.lock));
  const votes = j.votes.map((v) => decode(voteCodec, fromHex(v)));
  // The consensus machine takes these back as its own votes at the height without checking their
  // signatures (they are its own): one of another validator's, or of another height, counted as
  // a vote nobody cast. The signer only ever keeps its own, of its current height.
  for (const v of lock ? [lock, ...votes] : votes) {
    if (toHex(v.validator) !== j.publicKey || v.height !== height)
      throw new Error(`a kept vote is not this validator's at height ${height}`);
  }
  return {
    publicKey: j.publicKey,
    state: {
      height,
      round: j.round,
      step: j.step,
      signBytes: j.signBytes ? fromHex(j.signBytes) : null,
      signature: j.signature ? fromHex(j.signature, 64) : null,
      lock,
      votes,
    },
    lastProposal: j.lastProposal ? parseLastProposal(j.lastProposal, readRecord) : null,
  };
}

function parseLastProposal(
  j: NonNullable<Json['lastProposal']>,
  readRecord: (name: string) => Uint8Array | null,
): SignedProposalRecord {
  const proposal = decode(proposalCodec, fromHex(j.proposal));
  if ('block' in j) {
    return {
      proposal,
      block: decode(blockCodec, fromHex(j.block)),
      lastCommit: decode(commitCodec, fromHex(j.lastCommit)),
    };
  }
  if (typeof j.record !== 'string' || !/^[0-9a-f]{64}$/.test(j.record))
    throw new Error('the last proposal names no record');
  const bytes = readRecord(j.record);
  if (!bytes) throw new MissingRecord(j.record);
  if (toHex(sha256(bytes)) !== j.record) throw new Error(`the record ${j.record} does not match its hash`);
  return { proposal, ...decodeProposalRecord(bytes) };
}

/** A state file names a record that is not there (the state file copied without it, most likely). */
class MissingRecord extends Error {
  constructor(readonly record: string) {
    super(`the record ${record} of the last proposal is missing`);
  }
}

/** Where the signer state lives: a file for a real node, memory that survives "crashes" in the simulator. */
export interface PrivvalStorage {
  /** Names the storage in errors. */
  readonly where: string;
  /** The stored text, or null if nothing was ever written. */
  read(): string | null;
  /** Durable before it returns. */
  write(text: string): void;
  /** Names the record `name` in errors. */
  recordWhere(name: string): string;
  /** The bytes of the record file `name`, or null if there is none. */
  readRecord(name: string): Uint8Array | null;
  /**
   * Durable before it returns, with all of `bytes` under `name` (the hash of `bytes`): a file found
   * under that name is replaced, not trusted to hold them.
   */
  writeRecord(name: string, bytes: Uint8Array): void;
  /**
   * Deletes every record file but `keep`, and the temporary files interrupted saves left; one that
   * cannot be deleted does not stop the others, and the call then throws an UndeletedRecords (the
   * next save tries them again).
   */
  pruneRecords(keep: string | null): void;
}

/**
 * Old record files left on disk, at most, before a save fails. Each holds a whole block, and a
 * delete that fails every time (a policy that forbids it, a file an outside process keeps busy)
 * would otherwise leave one more at every proposal until the disk is full, and the chain's own
 * writes fail with it; a few that a transient failure leaves are deleted at a later save.
 */
export const MAX_UNDELETED_RECORDS = 16;

/**
 * Old record files that could not be deleted (`failures`), and temporary files of interrupted saves
 * that could not be (`temporaries`); the error names a few of each, and counts all. Only `failures`
 * count toward MAX_UNDELETED_RECORDS: a save leaves a temporary file only when the process dies
 * during it, not one per proposal, so those cannot fill the disk block by block, and a few stuck
 * ones must not stop the signer as old records would.
 */
export class UndeletedRecords extends Error {
  constructor(
    readonly failures: readonly string[],
    readonly temporaries: readonly string[] = [],
  ) {
    const list = (names: readonly string[], what: string) => {
      const shown = names.slice(0, 3).join('; ');
      const more = names.length > 3 ? `; and ${names.length - 3} more` : '';
      return `${names.length} ${what} not deleted (tried again at the next save): ${shown}${more}`;
    };
    super(
      [
        ...(failures.length > 0 ? [list(failures, 'old proposal record(s)')] : []),
        ...(temporaries.length > 0 ? [list(temporaries, 'temporary file(s) of interrupted saves')] : []),
      ].join('; '),
    );
    this.name = 'UndeletedRecords';
  }
}

/**
 * Saves the signer's state, before any signature it holds is released. The order is what makes a
 * crash at any point safe: (1) the record of the last proposal, if it is new (the state file
 * written next names it, so it must be on disk first); (2) the state file, atomically (the old one
 * stays whole until the new one is); (3) the records no longer named (a crash before leaves a stale
 * file, deleted at the next save).
 * A failure of (1) or (2) fails the save: the signature must not be released. A failure of (3)
 * does not: the state is durable by then, and a stale record is only a file too many (deleting it
 * is tried again at every save). It goes to `onCleanupFailure` (the driver logs it); a signer that
 * stopped signing for an undeletable old file (a busy or read-only one) would stall its chain.
 * Once more than MAX_UNDELETED_RECORDS old records are left, the save fails all the same (before
 * the signature is released): the disk is not filled one block at a time. Temporary files that a
 * crash left and that cannot be deleted are reported the same way but never stop signing.
 */
export function storePrivval(
  storage: PrivvalStorage,
  f: PrivValidatorFile,
  onCleanupFailure: (err: Error) => void = () => {},
): void {
  const record = f.lastProposal ? proposalRecordBytes(f.lastProposal) : null;
  if (record) storage.writeRecord(record.name, record.bytes);
  storage.write(serializePrivval(f));
  try {
    storage.pruneRecords(record?.name ?? null);
  } catch (err) {
    if (err instanceof UndeletedRecords && err.failures.length > MAX_UNDELETED_RECORDS) {
      throw new Error(
        `${storage.where}: signing stops: ${err.message}; at most ${MAX_UNDELETED_RECORDS} are left behind (free them)`,
      );
    }
    onCleanupFailure(err instanceof Error ? err : new Error(String(err)));
  }
}

const RECORD_INFIX = '.proposal-';

export function filePrivvalStorage(path: string): PrivvalStorage {
  const recordPath = (name: string) => `${path}${RECORD_INFIX}${name}`;
  // Records written by this process: a save with the same proposal skips the syscalls.
  const present = new Set<string>();
  return {
    where: path,
    read: () => (existsSync(path) ? readFileSync(path, 'utf8') : null),
    write: (text) => savePrivval(path, text),
    recordWhere: recordPath,
    readRecord: (name) =>
      existsSync(recordPath(name)) ? new Uint8Array(readFileSync(recordPath(name))) : null,
    writeRecord: (name, bytes) => {
      if (present.has(name)) return;
      // Written whole, then renamed: a file under this name always holds all of its bytes. A file
      // found there already (from an earlier life, or copied in) is not trusted to: it is written
      // again, once per proposal and process, rather than named by the state unchecked (a damaged
      // one would make the next restart refuse).
      savePrivval(recordPath(name), bytes);
      present.add(name);
    },
    pruneRecords: (keep) => {
      const base = basename(path);
      const prefix = `${base}${RECORD_INFIX}`;
      const failed: string[] = [];
      const failedTemps: string[] = [];
      for (const entry of readdirSync(dirname(path))) {
        // The state file's own temporary files that a crash left (each save picks a fresh name,
        // so none is ever reused and overwritten), and the fixed name older versions used.
        const stateTemp = entry === `${base}.tmp` || isWholeFileTemp(entry, base);
        if (!stateTemp && (!entry.startsWith(prefix) || entry === `${prefix}${keep}`)) continue;
        // A temporary file of an interrupted save is deleted as well (a record's: its name ends
        // in `.tmp`, which no record's hex name does). Forgotten before the
        // delete is tried: a delete that failed part-way (or a file removed under us) must not
        // let a later save of the same proposal skip writing it.
        const temp = stateTemp || entry.endsWith('.tmp');
        if (!stateTemp) present.delete(entry.slice(prefix.length));
        try {
          unlinkSync(join(dirname(path), entry));
        } catch (err) {
          (temp ? failedTemps : failed).push(`${entry}: ${(err as Error).message}`);
        }
      }
      if (failed.length > 0 || failedTemps.length > 0) throw new UndeletedRecords(failed, failedTemps);
    },
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
    file = parsePrivval(text, (name) => storage.readRecord(name));
  } catch (err) {
    // Starting over would forget what was signed: refuse, and let the operator decide.
    const why =
      err instanceof MissingRecord
        ? `the record file ${storage.recordWhere(err.record)} it names, the block of its last proposal, is missing (keep it with ${basename(path)}, and copy the two together; if it is lost for good, setting "lastProposal" to null in ${basename(path)} is safe: the signer still refuses every conflicting signature, and only that block can no longer be presented again)`
        : (err as Error).message;
    throw new Error(`${path} is unreadable (${why}); refusing to sign without it`);
  }
  if (file.publicKey !== toHex(publicKey)) {
    throw new Error(`${path} belongs to validator ${file.publicKey}, not ${toHex(publicKey)}`);
  }
  return file;
}

/**
 * Durable before it returns (the driver sends no signature before this returns): writeFileWhole
 * writes a fresh temporary file, created exclusively, fsyncs it, renames it over the old one and
 * fsyncs the folder. The fixed `${path}.tmp` it used was opened with 'w', so a link planted there
 * had the signer state written through it, and a rename that failed left the temporary file.
 */
export function savePrivval(path: string, text: string | Uint8Array): void {
  writeFileWhole(path, text);
}
