/**
 * A light client: it believes a header only when a commit of the validator set in force at its
 * height signs it, and it learns each set only from a Merkle proof against a header it already
 * believes (docs/rpc.md, "Light clients"). Nothing a node says is trusted on its own word.
 *
 * From a trust anchor (the genesis validators, or a trusted checkpoint HEIGHT:HASH at an epoch's
 * last block) it walks epoch boundaries: the last block of each epoch is verified with the set of
 * that epoch (more than 2/3 of its power signed precommits for exactly that block hash, height and
 * chain id), and the set of the next epoch is read from that block's state root, which is the state
 * after the block, boundary bookkeeping included (the set of epoch e+1 is stored at the end of
 * e's last block). Each call crosses at most `maxBoundaries` boundaries (one block and one proof
 * each); what it learnt is kept, so a later call continues from there.
 */
import {
  type BlockHeader,
  blockHash,
  blockHeaderCodec,
  type Commit,
  chipKey,
  DEFAULT_POCI_PARAMS,
  decode,
  decodeAddress,
  decodeStoredValidatorSet,
  decodeValidatorList,
  encode,
  equalBytes,
  leaseKey,
  pociParamsCodec,
  toHex,
  type Validator,
  ValidatorSet,
  validatorSetProofKeys,
  verifyBlockCommit,
} from '@unc/core';
import { decodeField, hexField, ProofError, provenValue } from './proof-fields.js';
import { verifyAccountProof } from './proofs.js';
import {
  absenceOf,
  checkChip,
  checkFresh,
  checkLease,
  type ProvenChip,
  type ProvenLease,
  type RecordFreshness,
  verifyRecord,
} from './verified-records.js';
import type {
  AccountJson,
  BlockJson,
  ChipJson,
  HeaderJson,
  LeaseJson,
  RecordProofJson,
  ValidatorSetProofJson,
} from './views.js';

/** What the light client asks a node for (an UncClient has both). */
export interface LightClientSource {
  getBlock(ref: number): Promise<BlockJson>;
  getValidatorSetProof(height: number): Promise<ValidatorSetProofJson>;
}

export type TrustAnchor =
  | {
      /** The genesis file's chain id, validators (power 1 when it gives none) and epochBlocks. */
      kind: 'genesis';
      chainId: string;
      validators: readonly { publicKey: Uint8Array; power?: bigint }[];
      epochBlocks: bigint;
    }
  | {
      /** A block the user trusts by hash; it must be an epoch's last block. */
      kind: 'checkpoint';
      chainId: string;
      height: bigint;
      hash: Uint8Array;
    };

/** A header whose hash a commit of the proven validator set signed. */
export interface VerifiedHeader {
  header: BlockHeader;
  hash: Uint8Array;
  /** Voting power that signed its commit, and the set's total. */
  signedPower: bigint;
  totalPower: bigint;
  /** Epoch boundaries crossed to reach it in this call. */
  boundariesCrossed: number;
}

interface EpochSet {
  set: ValidatorSet;
  epochBlocks: bigint;
  /** The first height it signs (the block after the boundary that proved it; 1 for the genesis). */
  start: bigint;
}

export const DEFAULT_MAX_BOUNDARIES = 64;
/**
 * Sets kept for heights already passed (each up to maxValidators keys): a client walking a year of
 * hourly epochs from the genesis otherwise held every one of them. Older heights are refused by name.
 */
export const DEFAULT_MAX_KEPT_SETS = 256;

/**
 * A call stopped at its `maxBoundaries`: what it verified is kept, and the next call goes on from
 * `verifiedThrough` (the newest boundary block verified). A one-shot caller (the CLI) calls again
 * while it moves forward: a node cannot stretch the walk past the real chain, each boundary needs
 * the proven set's commit.
 */
export class BoundaryLimitError extends ProofError {
  constructor(
    message: string,
    readonly verifiedThrough: bigint,
  ) {
    super(message);
    this.name = 'BoundaryLimitError';
  }
}

/**
 * A light-client call (verifyAccount, verifyChip, verifyLease, verifyHeight) called again each time
 * it stops at its per-call boundary limit having moved forward; a stop that did not move forward,
 * or any other error, is thrown. `progress` hears each boundary reached.
 */
export async function walkBoundaries<T>(
  call: () => Promise<T>,
  progress: (verifiedThrough: bigint) => void = () => {},
): Promise<T> {
  let through = -1n;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof BoundaryLimitError) || err.verifiedThrough <= through) throw err;
      through = err.verifiedThrough;
      progress(through);
    }
  }
}

export class LightClient {
  readonly chainId: string;
  /** epoch → the set that signs its blocks and the epochBlocks in force. */
  private readonly sets = new Map<bigint, EpochSet>();
  private firstEpoch: bigint;
  private lastEpoch: bigint;
  /** The genesis validators, when known (a stored [] stands for them). */
  private genesisSet: Validator[] | null;
  private anchorPending: { height: bigint; hash: Uint8Array } | null = null;
  /** Whether the oldest sets were dropped (maxKeptSets). */
  private forgotten = false;

  constructor(
    private readonly source: LightClientSource,
    anchor: TrustAnchor,
    private readonly maxBoundaries = DEFAULT_MAX_BOUNDARIES,
    private readonly maxKeptSets = DEFAULT_MAX_KEPT_SETS,
  ) {
    if (!Number.isSafeInteger(maxKeptSets) || maxKeptSets < 1)
      throw new RangeError('maxKeptSets must be at least 1');
    this.chainId = anchor.chainId;
    if (anchor.kind === 'genesis') {
      if (anchor.validators.length === 0) throw new ProofError('the genesis has no validators');
      if (anchor.epochBlocks < 1n) throw new ProofError('epochBlocks must be at least 1');
      this.genesisSet = anchor.validators.map((v) => ({ publicKey: v.publicKey, power: v.power ?? 1n }));
      this.sets.set(0n, {
        set: new ValidatorSet(this.genesisSet),
        epochBlocks: anchor.epochBlocks,
        start: 1n,
      });
      this.firstEpoch = 0n;
      this.lastEpoch = 0n;
    } else {
      this.genesisSet = null;
      this.anchorPending = { height: anchor.height, hash: anchor.hash.slice() };
      this.firstEpoch = -1n;
      this.lastEpoch = -1n;
    }
  }

  /**
   * Fetches the block at `height` and returns its header once a commit of the set in force at that
   * height signs it; throws ProofError naming what failed otherwise.
   */
  async verifyHeight(height: number): Promise<VerifiedHeader> {
    if (!Number.isSafeInteger(height) || height < 1) throw new ProofError(`bad height ${height}`);
    const target = BigInt(height);
    if (this.anchorPending) await this.startFromCheckpoint(this.anchorPending);
    let crossed = 0;
    for (;;) {
      // Each learnt set signs from the block after the boundary that proved it, so a height is
      // placed by those proven boundaries, never by an epoch length that may have changed since.
      const first = this.sets.get(this.firstEpoch)!;
      if (target < first.start) {
        throw new ProofError(
          this.forgotten
            ? `height ${height} is older than the validator sets this client keeps (from block ${first.start})`
            : `height ${height} is before the trust anchor (block ${first.start - 1n})`,
        );
      }
      const last = this.sets.get(this.lastEpoch)!;
      if (target <= (this.lastEpoch + 1n) * last.epochBlocks) {
        let epoch = this.lastEpoch;
        while (this.sets.get(epoch)!.start > target) epoch--;
        const block = await this.source.getBlock(height);
        const v = this.checkBlock(block, target, this.sets.get(epoch)!.set);
        return { ...v, boundariesCrossed: crossed };
      }
      if (crossed >= this.maxBoundaries) {
        throw new BoundaryLimitError(
          `height ${height} is more than ${this.maxBoundaries} epoch boundaries past the last verified one; call again to continue`,
          last.start - 1n,
        );
      }
      await this.crossBoundary();
      crossed++;
    }
  }

  /** The account read at the head, its proof checked against a header this client verified. */
  async verifyAccount(
    client: LightClientSource & { getAccount(address: string, proof: boolean): Promise<AccountJson> },
    address: string,
    freshness: RecordFreshness = {},
  ): Promise<{ balance: bigint; nonce: bigint; header: VerifiedHeader; account: AccountJson }> {
    let asked: Uint8Array;
    try {
      asked = decodeAddress(address);
    } catch (err) {
      throw new ProofError(`address: ${(err as Error).message}`);
    }
    const account = await client.getAccount(address, true);
    if (!Number.isSafeInteger(account?.height)) throw new ProofError('account.height is not an integer');
    // The proof is checked under the address the node names: a genuine proof of another (richer)
    // account would pass for the one asked unless the two are bound here.
    let answered: Uint8Array;
    try {
      answered = decodeAddress(account.address);
    } catch (err) {
      throw new ProofError(`account.address: ${(err as Error).message}`);
    }
    if (!equalBytes(answered, asked)) {
      throw new ProofError(`the node answered for ${account.address}, not ${address}`, 'WRONG_RECORD');
    }
    const header = await this.verifyHeight(account.height);
    checkFresh(header.header.time, freshness, `account ${address}`, account.height);
    // Returned (and printed by the CLI) beside "verified": it must be the root that was checked.
    if (account.stateRoot !== toHex(header.header.stateRoot)) {
      throw new ProofError(
        `account.stateRoot ${String(account.stateRoot)} is not the verified header's`,
        'MISMATCH',
      );
    }
    // Only the encoding and hash are read: both are the verified header's, not the node's.
    const proven = verifyAccountProof(account, {
      encoded: toHex(encode(blockHeaderCodec, header.header)),
      hash: toHex(header.hash),
    } as HeaderJson);
    return { ...proven, header, account };
  }

  /**
   * The chip `chipId` at the head, proven: its record under chipKey(the id asked), decoded with
   * core's codec, and its effective status from proven state (verified-records.ts). `chip: null`
   * only when the node proved the record absent. Throws a ProofError with a code otherwise
   * (`STALE`: read at a block older than `freshness.notBefore`; the node picks the height).
   */
  async verifyChip(
    client: LightClientSource & { getChip(chipId: string, proof: boolean): Promise<ChipJson> },
    chipId: string,
    freshness: RecordFreshness = {},
  ): Promise<({ chip: null } | (ProvenChip & { json: ChipJson })) & { header: VerifiedHeader }> {
    const asked = hexField(chipId, 'chipId', 32);
    const got = await this.provenRecord(`chip ${toHex(asked)}`, chipKey(asked), freshness, () =>
      client.getChip(toHex(asked), true),
    );
    if (got.json === null) return { chip: null, header: got.header };
    const { json, value, state, header } = got;
    return { ...checkChip(asked, value, state, json, header.header), json, header };
  }

  /**
   * The lease `leaseId` at the head, proven: its record under leaseKey(the id asked), its status at
   * the verified header's block time, and its offer's endpoint and TLS fingerprints from proven
   * state. `lease: null` only when the node proved the record absent.
   */
  async verifyLease(
    client: LightClientSource & { getLease(id: string, proof: boolean): Promise<LeaseJson> },
    leaseId: string,
    freshness: RecordFreshness = {},
  ): Promise<({ lease: null } | (ProvenLease & { json: LeaseJson })) & { header: VerifiedHeader }> {
    const asked = hexField(leaseId, 'leaseId', 32);
    const got = await this.provenRecord(`lease ${toHex(asked)}`, leaseKey(asked), freshness, () =>
      client.getLease(toHex(asked), true),
    );
    if (got.json === null) return { lease: null, header: got.header };
    const { json, value, state, header } = got;
    return { ...checkLease(asked, value, state, header.header.time, json), json, header };
  }

  /**
   * One record read with its proof: the node's answer, or the proof of absence its NOT_FOUND
   * carries, checked under `key` (derived from the id asked) against a verified header. Present
   * in the answer and in the state, or absent from both; any other pairing is MISMATCH.
   */
  private async provenRecord<J extends RecordProofJson>(
    what: string,
    key: Uint8Array,
    freshness: RecordFreshness,
    read: () => Promise<J>,
  ): Promise<
    | { json: null; header: VerifiedHeader }
    | {
        json: J;
        value: Uint8Array;
        state: Awaited<ReturnType<typeof verifyRecord>>['state'];
        header: VerifiedHeader;
      }
  > {
    let json: J | null = null;
    let absence: RecordProofJson | null = null;
    try {
      json = await read();
    } catch (err) {
      absence = absenceOf(err);
      if (!absence) throw err;
    }
    const { value, header, state } = await verifyRecord(
      (h) => this.verifyHeight(h),
      (json ?? absence)!,
      key,
      what,
      freshness,
    );
    if (json === null) {
      if (value !== null)
        throw new ProofError(`${what}: the node says it does not exist, the state holds it`, 'MISMATCH');
      return { json: null, header };
    }
    if (value === null)
      throw new ProofError(`${what}: the node reported it, the state proves it absent`, 'MISMATCH');
    return { json, value, state, header };
  }

  /** Verifies the last block of the newest known epoch and learns the next epoch's set from it. */
  private async crossBoundary(): Promise<void> {
    const { set, epochBlocks } = this.sets.get(this.lastEpoch)!;
    const boundary = (this.lastEpoch + 1n) * epochBlocks;
    const block = await this.source.getBlock(Number(boundary));
    const { header } = this.checkBlock(block, boundary, set);
    this.learnNextSet(header, await this.source.getValidatorSetProof(Number(boundary)), this.lastEpoch + 1n);
  }

  private async startFromCheckpoint(anchor: { height: bigint; hash: Uint8Array }): Promise<void> {
    const block = await this.source.getBlock(Number(anchor.height));
    const header = this.decodeHeader(block, anchor.height);
    const hash = blockHash(header);
    if (!equalBytes(hash, anchor.hash)) {
      throw new ProofError(
        `block ${anchor.height} hashes to ${toHex(hash)}, not the trusted checkpoint ${toHex(anchor.hash)}`,
      );
    }
    let proof: ValidatorSetProofJson;
    try {
      proof = await this.source.getValidatorSetProof(Number(anchor.height));
    } catch (err) {
      throw new ProofError(
        `no validator set proof at the checkpoint ${anchor.height} (it must be an epoch's last block that this node wrote itself): ${(err as Error).message}`,
      );
    }
    if (!proofObject(proof)) throw new ProofError('the validator set proof is not an object');
    const next = BigInt(checkInt(proof.epoch, 'proof.epoch'));
    this.learnNextSet(header, proof, next, true);
    this.anchorPending = null;
  }

  /**
   * Reads the set of `epoch` from `header`'s state root (header already verified): the ring slot,
   * which must be for exactly that epoch, the genesis set when the slot holds [], and the
   * epochBlocks then in force. `anchor`: the first set (checkpoint), which must begin right
   * after the header.
   */
  private learnNextSet(
    header: BlockHeader,
    proof: ValidatorSetProofJson,
    epoch: bigint,
    anchor = false,
  ): void {
    if (!proofObject(proof)) throw new ProofError('the validator set proof is not an object');
    const keys = validatorSetProofKeys(epoch);
    const root = header.stateRoot;
    const setRaw = provenValue(root, keys.set, proof.set, `the set of epoch ${epoch}`);
    if (setRaw === null) throw new ProofError(`block ${header.height} stores no set for epoch ${epoch}`);
    const stored = decodeField(decodeStoredValidatorSet, setRaw, `the set of epoch ${epoch}`);
    if (stored.epoch !== epoch) {
      throw new ProofError(
        `block ${header.height}'s ring slot holds the set of epoch ${stored.epoch}, not ${epoch}`,
      );
    }
    const paramsRaw = provenValue(root, keys.params, proof.params, 'the PoCI parameters');
    const epochBlocks = paramsRaw
      ? decodeField((b) => decode(pociParamsCodec, b), paramsRaw, 'the PoCI parameters').epochBlocks
      : DEFAULT_POCI_PARAMS.epochBlocks;
    if (epochBlocks < 1n) throw new ProofError('the proven epochBlocks is 0');
    // The set must take effect at the block after this one: the header is the last of epoch - 1.
    if (header.height !== epoch * epochBlocks) {
      throw new ProofError(
        `block ${header.height} is not the last block before epoch ${epoch} (epochs of ${epochBlocks} blocks)`,
      );
    }
    const genesisRaw = provenValue(root, keys.genesis, proof.genesis, 'the genesis validators');
    if (genesisRaw) {
      this.genesisSet = decodeField(decodeValidatorList, genesisRaw, 'the genesis validators');
    }
    let validators = stored.validators;
    if (validators.length === 0) {
      if (!this.genesisSet) throw new ProofError(`epoch ${epoch} keeps the genesis set, which is not proven`);
      validators = this.genesisSet;
    }
    let set: ValidatorSet;
    try {
      set = new ValidatorSet(validators);
    } catch (err) {
      throw new ProofError(`the set of epoch ${epoch}: ${(err as Error).message}`);
    }
    this.sets.set(epoch, { set, epochBlocks, start: header.height + 1n });
    this.lastEpoch = epoch;
    if (anchor) this.firstEpoch = epoch;
    while (this.sets.size > this.maxKeptSets) {
      this.sets.delete(this.firstEpoch);
      this.firstEpoch++;
      this.forgotten = true;
    }
  }

  private decodeHeader(block: BlockJson, height: bigint): BlockHeader {
    if (typeof block !== 'object' || block === null) throw new ProofError(`block ${height} is not an object`);
    const header = decodeField(
      (b) => decode(blockHeaderCodec, b),
      hexField(block.encoded, 'header.encoded'),
      `block ${height} header`,
    );
    if (header.height !== height)
      throw new ProofError(`asked for block ${height}, got block ${header.height}`);
    if (header.chainId !== this.chainId) {
      throw new ProofError(`block ${height} is of chain "${header.chainId}", not "${this.chainId}"`);
    }
    return header;
  }

  /** The header of `block` once `set`'s commit signs it (height, hash, chain id bound). */
  private checkBlock(
    block: BlockJson,
    height: bigint,
    set: ValidatorSet,
  ): { header: BlockHeader; hash: Uint8Array; signedPower: bigint; totalPower: bigint } {
    const header = this.decodeHeader(block, height);
    const hash = blockHash(header);
    const commit = commitOf(block.commit, height);
    let signedPower: bigint;
    try {
      signedPower = verifyBlockCommit(set, this.chainId, commit, hash, height);
    } catch (err) {
      throw new ProofError(`block ${height} is not signed by its validators: ${(err as Error).message}`);
    }
    return { header, hash, signedPower, totalPower: set.totalPower };
  }
}

function commitOf(json: BlockJson['commit'], height: bigint): Commit {
  if (typeof json !== 'object' || json === null) throw new ProofError(`block ${height} has no commit`);
  if (!Array.isArray(json.signatures))
    throw new ProofError(`block ${height}: commit.signatures is not a list`);
  return {
    height: BigInt(checkInt(json.height, 'commit.height')),
    round: checkInt(json.round, 'commit.round'),
    blockHash: hexField(json.blockHash, 'commit.blockHash', 32),
    signatures: json.signatures.map((s, i) => {
      if (typeof s !== 'object' || s === null)
        throw new ProofError(`commit.signatures[${i}] is not an object`);
      return {
        validator: hexField(s.validator, `commit.signatures[${i}].validator`, 32),
        signature: hexField(s.signature, `commit.signatures[${i}].signature`, 64),
      };
    }),
  };
}

function proofObject(p: unknown): p is ValidatorSetProofJson {
  return typeof p === 'object' && p !== null;
}

function checkInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ProofError(`${what} is not a non-negative integer`);
  }
  return value;
}
