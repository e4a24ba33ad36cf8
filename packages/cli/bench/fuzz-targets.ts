/**
 * Every decoder and parser an outsider reaches, as fuzz targets (fuzz-lib.ts runs them):
 *
 * - pure decoders of @unc/core: transactions, blocks, consensus messages (votes, proposals,
 *   certificates, evidence), DER, X.509, TPM 2.0 structures, SPDM reports, the two attestation
 *   verifiers end to end, job receipts;
 * - a real follower node (LevelDB in a temp folder, a fake network that hands us its handlers):
 *   gossip (`onGossip` for every topic), sync frames (status, block-range requests, blocks a peer
 *   serves, applied to the chain), every JSON-RPC method with random parameters, and its JSON-RPC
 *   server over HTTP (envelopes, batches, broken JSON);
 * - a light client's check of a node's answer (verifyAccountProof);
 * - the provider: request authentication (renter-signed headers), job inputs, and its HTTP API
 *   for real (a dev-soft chip, a lease in memory, OCR and ONNX Runtime loaded).
 *
 * Seeds are real encodings: blocks a producer node made from signed transactions of every action
 * type, votes and proposals signed by the dev validator, the TPM and NVIDIA attestation fixtures.
 * Where a signature guards the deeper checks, `fixup` re-signs a mutated body so the input gets
 * past it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Action,
  AttestationError,
  accountKey,
  type Block,
  blockCodec,
  blockHash,
  type Chip,
  type Codec,
  certificateFromVotes,
  commitCertificateCodec,
  consensusEvidenceCodec,
  contentHash,
  DecodeError,
  der,
  devSoftChipId,
  duplicateProposalEvidence,
  duplicateVoteEvidence,
  type Evidence,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  encodeAddress,
  envelopeFromBytes,
  envelopeFromSigned,
  evidenceCodec,
  fromHex,
  genesisValidatorSet,
  type HeartbeatEvidence,
  hardwareModuleName,
  heartbeatEvidenceCodec,
  type JobReceipt,
  merkleProofCodec,
  nvidiaModel,
  parseCertificate,
  parseGenesis,
  parseSpdmMeasurements,
  parseSubjectPublicKeyInfo,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtSignature,
  pemToDer,
  proposalCodec,
  Reader,
  receiptDigest,
  type SignedReceipt,
  signedReceiptCodec,
  signedTransactionCodec,
  signProposal,
  signTransaction,
  signVote,
  splitSpdmReport,
  subjectAltNames,
  type Transaction,
  tcbInfoFwids,
  toHex,
  tpm2ChipId,
  tpmModel,
  transactionCodec,
  trieKey,
  UncError,
  utf8,
  verifyCommitCertificate,
  verifyConsensusEvidence,
  verifyEnvelopeSignature,
  verifyEvidence,
  verifyNvidiaSpdm,
  verifyProposalSignature,
  verifyReceipt,
  verifyTpm2,
  verifyVoteSignature,
  voteCodec,
} from '@unc/core';
import {
  DevSoftSigner,
  HttpError,
  type ProviderLease,
  ProviderServer,
  RequestAuthenticator,
} from '@unc/miner';
import {
  blockRangeCodec,
  type Chain,
  chainSyncTarget,
  createApi,
  DEV_CHIP_INDEX,
  decodeBlockRangeRequest,
  decodeStatusFrame,
  devGenesisJson,
  devKey,
  devValidator,
  type GossipTopic,
  type Network,
  type NetworkHandlers,
  proposalMessageCodec,
  signProposalIds,
  silentLogger,
  statusCodec,
  txBatchCodec,
  UncNode,
  voteMessageCodec,
} from '@unc/node';
import {
  type AccountJson,
  blockToJson,
  closeLeaseAction,
  closeOfferAction,
  createOfferAction,
  decodeSignedReceipt,
  disputeAction,
  type HeaderJson,
  openLeaseAction,
  ProofError,
  postReceiptAction,
  signJobRequest,
  tensorsFromJson,
  topUpLeaseAction,
  transferAction,
  txToJson,
  updateOfferTlsAction,
  verifyAccountProof,
  verifyReceiptOffline,
} from '@unc/sdk';
import type { FuzzTarget, Json, Rng } from './fuzz-lib.js';

const ROOT = new URL('../../../../', import.meta.url).pathname;
const FIXTURES = join(ROOT, 'packages/core/test/attestation/fixtures');
const tpmFixture = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, 'tpm', name)));
const TPM_MESSAGE = fromHex(readFileSync(join(FIXTURES, 'tpm/message.hex'), 'utf8').trim(), 32);
const TPM_AT = BigInt(Date.parse('2030-06-01T00:00:00Z'));
const NVIDIA_AT = BigInt(Date.parse('2025-06-01T00:00:00Z'));

// ---------------------------------------------------------------------------------------------
// Classification

/** The protocol's own error family (DecodeError, ValidationError, AttestationError, …). */
const isUnc = (err: unknown) => err instanceof UncError;
const isAttestation = (err: unknown) => err instanceof AttestationError;
/** The node's JSON-RPC errors: RpcError (an integer code) or an UncError (a string code). */
const isRpcClassified = (err: unknown) =>
  err instanceof UncError ||
  (err instanceof Error && err.name === 'RpcError' && Number.isInteger((err as { code?: unknown }).code));

/**
 * A codec's own decode, without core's `decode()` safety net (which rewraps any exception as a
 * DecodeError "malformed …"): a TypeError or RangeError inside a codec shows up here as what it is.
 */
function strictDecode<T>(codec: Codec<T>, bytes: Uint8Array): T {
  const r = new Reader(bytes);
  const v = codec.read(r);
  r.end(codec.name);
  return v;
}

/** Decoding is canonical: whatever decodes must encode back to the very same bytes. */
function roundTrip<T>(codec: Codec<T>, bytes: Uint8Array): T {
  const v = strictDecode(codec, bytes);
  const again = encode(codec, v);
  if (Buffer.compare(Buffer.from(again), Buffer.from(bytes)) !== 0) {
    throw new Error(`${codec.name}: decoded value re-encodes to different bytes (not canonical)`);
  }
  return v;
}

function jsonOf(input: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(input).toString('utf8'));
  } catch {
    return undefined;
  }
}

const jsonSeed = (v: unknown) => Buffer.from(JSON.stringify(v));

// ---------------------------------------------------------------------------------------------
// Chip records and evidence

function chipRecord(profile: Chip['profile'], chipId: Uint8Array, keyMaterial: Uint8Array): Chip {
  return {
    chipId,
    owner: new Uint8Array(20),
    vendorId: 'dev',
    modelId: 'sim-h100',
    profile,
    power: 1000n,
    keyMaterial,
    certSerials: [],
    registeredAt: 1n,
    firstEpoch: 0n,
    status: 0,
    statusReason: '',
    tpmClock: null,
    creditClock: null,
    creditClockTime: 0n,
    priorCredit: null,
    epoch: 0n,
    answered: 0,
    prevAnswered: 0,
    uncredited: 0,
    prevUncredited: 0,
    lastAnsweredSlot: 0n,
    lastAnsweredAt: 0n,
    settledThrough: 0n,
    slotsAnswered: 0n,
    slotsMissed: 0n,
    rewardsEarned: 0n,
    rewardedThrough: 0n,
    prevPower: 1000n,
    certsNotAfter: null,
    releasedAt: 0n,
  } as Chip;
}

interface AttestationFixtures {
  tpm: {
    attest: Uint8Array;
    signature: Uint8Array;
    akCertificate: Uint8Array;
    chain: Uint8Array[];
    label: string;
  }[];
  tpmRoot: Uint8Array;
  tpmPublics: Uint8Array[];
  nvidia: {
    request: Uint8Array;
    response: Uint8Array;
    chain: Uint8Array[];
    roots: Uint8Array[];
    nonce: Uint8Array;
  };
  certificates: Uint8Array[];
}

function attestationFixtures(): AttestationFixtures {
  const intEcc = tpmFixture('int-ecc.der');
  const intRsa = tpmFixture('int-rsa.der');
  const tpm = [
    {
      label: 'quote-ecc',
      attest: 'quote-ecc.attest',
      sig: 'quote-ecc.sig',
      cert: 'ak-ecc-cert.der',
      chain: [intEcc],
    },
    {
      label: 'time-ecc',
      attest: 'time-ecc.attest',
      sig: 'time-ecc.sig',
      cert: 'ak-ecc-cert.der',
      chain: [intEcc],
    },
    {
      label: 'quote-rsa',
      attest: 'quote-rsa.attest',
      sig: 'quote-rsa.sig',
      cert: 'ak-rsa-cert.der',
      chain: [intRsa],
    },
    {
      label: 'quote-rsapss',
      attest: 'quote-rsapss.attest',
      sig: 'quote-rsapss.sig',
      cert: 'ak-rsapss-cert.der',
      chain: [intRsa],
    },
  ].map((c) => ({
    label: c.label,
    attest: tpmFixture(c.attest),
    signature: tpmFixture(c.sig),
    akCertificate: tpmFixture(c.cert),
    chain: c.chain,
  }));
  const dir = join(FIXTURES, 'nvidia-h100');
  const report = fromHex(readFileSync(join(dir, 'report.hex'), 'utf8').trim());
  const chain = pemToDer(readFileSync(join(dir, 'chain.pem'), 'utf8'));
  const roots = pemToDer(readFileSync(join(dir, 'device_root.pem'), 'utf8'));
  const { request, response } = splitSpdmReport(report);
  const certificates = [
    ...[
      'ak-ecc-cert.der',
      'ak-rsa-cert.der',
      'ak-rsapss-cert.der',
      'int-ecc.der',
      'int-rsa.der',
      'root.der',
    ].map(tpmFixture),
    ...['impostor-forged-ski.der', 'impostor-lookalike.der'].map(tpmFixture),
    ...chain,
    ...roots,
  ];
  return {
    tpm,
    tpmRoot: tpmFixture('root.der'),
    tpmPublics: ['ak-ecc.tpm2b', 'ak-rsa.tpm2b', 'ak-rsapss.tpm2b'].map(tpmFixture),
    nvidia: { request, response, chain, roots, nonce: request.slice(4, 36) },
    certificates,
  };
}

/**
 * Inputs that carry several byte strings (evidence pieces) travel as one: u32 count, then each
 * piece as u32 length + bytes, so the mutators can damage lengths, pieces and their number.
 */
function packPieces(pieces: readonly Uint8Array[]): Uint8Array {
  const size = 4 + pieces.reduce((a, p) => a + 4 + p.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, pieces.length);
  let at = 4;
  for (const p of pieces) {
    view.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** The pieces, or null when the framing itself is broken (the harness's own framing, not tested). */
function unpackPieces(input: Uint8Array, want: number): Uint8Array[] | null {
  if (input.length < 4) return null;
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const n = view.getUint32(0);
  if (n !== want) return null;
  const out: Uint8Array[] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    if (at + 4 > input.length) return null;
    const len = view.getUint32(at);
    if (at + 4 + len > input.length) return null;
    out.push(input.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return at === input.length ? out : null;
}

/** The primitive readers by the tag they read, as the certificate parser applies them. */
const DER_READERS: Record<number, (node: der.DerNode, what: string) => unknown> = {
  [der.TAG.BOOLEAN]: der.readBoolean,
  [der.TAG.INTEGER]: der.readSmallInteger,
  [der.TAG.BIT_STRING]: der.readBitString,
  [der.TAG.OID]: der.readOid,
  [der.TAG.UTC_TIME]: der.readTime,
  [der.TAG.GENERALIZED_TIME]: der.readTime,
  [der.TAG.NULL]: der.readNull,
};

/** Walks a DER tree and applies the reader of each node's tag to it (each may refuse). */
function exerciseDer(node: der.DerNode, depth: number): void {
  if (depth > 64) return;
  const read = DER_READERS[node.tag] ?? (node.constructed ? null : der.readString);
  if (read) {
    try {
      read(node, 'fuzz');
    } catch (err) {
      if (!isAttestation(err)) throw err;
    }
  }
  if (node.constructed) for (const c of der.children(node)) exerciseDer(c, depth + 1);
}

// ---------------------------------------------------------------------------------------------
// A dev chain: a producer that makes real blocks, a follower whose handlers we drive

interface Chains {
  genesis: unknown;
  chainId: string;
  blocks: Uint8Array[];
  txs: Uint8Array[];
  follower: UncNode;
  handlers: NetworkHandlers;
  close(): Promise<void>;
}

class FakeNetwork implements Network {
  readonly peerId = 'fuzz-peer';
  readonly listenAddrs: string[] = [];
  async publish(_topic: GossipTopic, _data: Uint8Array): Promise<void> {}
  peers() {
    return [];
  }
  async requestStatus(): Promise<never> {
    throw new Error('no peers');
  }
  async requestBlocks(): Promise<never> {
    throw new Error('no peers');
  }
  async requestTxs(): Promise<never> {
    throw new Error('no peers');
  }
  penalize(): void {}
  async sendDirect(): Promise<void> {}
  onPeerConnected(): () => void {
    return () => {};
  }
  async stop(): Promise<void> {}
}

function allActions(chainId: string, receipt: SignedReceipt, evidence: Evidence[]): Action[] {
  const id = (s: string) => contentHash(utf8(s));
  const hex = (s: string) => toHex(id(s));
  const vote = signVote(
    chainId,
    { type: 'prevote', height: 5n, round: 0, blockHash: id('a'), validator: devValidator().publicKey },
    devValidator().seed,
  );
  const vote2 = signVote(chainId, { ...vote, blockHash: null }, devValidator().seed);
  const actions: Action[] = [
    transferAction(encodeAddress(devKey(2).address), 12345n, 'fuzz memo'),
    { type: 'bond', amount: 10n ** 18n },
    { type: 'unbond', amount: 5n },
    { type: 'claimRewards', chipIds: [id('chip1'), id('chip2')] },
    { type: 'deregisterChip', chipId: id('chip1') },
    {
      type: 'transferChip',
      chipId: id('chip1'),
      newOwner: devKey(3).address,
      anchorHeight: 1n,
      consent: { type: 'dev-soft', signature: new Uint8Array(64).fill(7) },
    },
    {
      type: 'heartbeat',
      answers: [
        {
          chipId: id('chip1'),
          epoch: 0n,
          slot: 1,
          evidence: { type: 'dev-soft', signature: new Uint8Array(64).fill(9) },
        },
        {
          chipId: id('chip2'),
          epoch: 0n,
          slot: 2,
          evidence: {
            type: 'tpm2',
            attest: tpmFixture('quote-ecc.attest'),
            signature: tpmFixture('quote-ecc.sig'),
          },
        },
      ],
    },
    { type: 'evidence', evidence: duplicateVoteEvidence(chainId, vote, vote2) },
    createOfferAction({
      chipIds: [hex('chip1')],
      pricePerHour: 10n ** 17n,
      minHours: 1,
      maxHours: 24,
      noticeMs: 60_000n,
      endpoint: 'https://provider.example:8443',
      attributes: { memoryMiB: 81920, region: 'eu', runtimes: ['onnx', 'ocr'] },
      tlsFingerprints: [hex('cert')],
    }),
    updateOfferTlsAction(hex('offer'), [hex('cert'), hex('cert2')]),
    closeOfferAction(hex('offer')),
    openLeaseAction(hex('offer'), 2, {
      chipId: hex('chip1'),
      deposit: 7n,
      maxPricePerHour: 10n ** 17n,
      termsDigest: id('terms'),
    }),
    topUpLeaseAction(hex('lease'), 99n),
    closeLeaseAction(hex('lease')),
    postReceiptAction(receipt, 5),
    disputeAction(
      {
        request: {
          chainId,
          leaseId: id('lease'),
          method: 'POST',
          path: '/v1/jobs?wait=1',
          bodyHash: id('body'),
          timestampMs: 1n,
          nonce: 2n,
        },
        signature: new Uint8Array(64).fill(5),
      },
      'no answer',
    ),
    {
      type: 'governance',
      proposal: { type: 'revokeSerial', vendorId: 'dev', serial: '01ab', revoked: true },
      approvals: [{ publicKey: devKey(4).publicKey, signature: new Uint8Array(64).fill(1) }],
    },
    {
      type: 'governance',
      proposal: {
        type: 'setVendor',
        vendor: { id: 'tpmv', name: 'TPM vendor', profile: 'tpm2', roots: [tpmFixture('root.der')] },
      },
      approvals: [],
    },
  ];
  for (const ev of evidence) actions.push({ type: 'registerChip', anchorHeight: 0n, evidence: ev });
  return actions;
}

async function startChains(): Promise<Chains> {
  const dirs = [
    mkdtempSync(join(tmpdir(), 'unc-fuzz-producer-')),
    mkdtempSync(join(tmpdir(), 'unc-fuzz-follower-')),
  ];
  const genesis = devGenesisJson({ time: new Date('2026-01-01T00:00:00Z') });
  const producer = await UncNode.start({
    dataDir: dirs[0]!,
    genesis,
    validatorSeed: devValidator().seed,
    rpcPort: 0,
    rpcHost: '127.0.0.1',
    blockTimeMs: 20,
    logger: silentLogger,
  });
  const chainId = producer.chain.genesis.chainId;
  const blocks: Uint8Array[] = [];
  const txs: Uint8Array[] = [];
  try {
    // Transfers between dev accounts: they apply, so they end up in blocks.
    const params = producer.chain.params;
    for (let i = 0; i < 6; i++) {
      const k = devKey(i);
      const base: Transaction = {
        chainId,
        signer: k.publicKey,
        nonce: 0n,
        fee: 0n,
        expiresAt: 1000n,
        actions: [
          transferAction(encodeAddress(devKey(i + 1).address), BigInt(1000 + i), i % 2 ? 'memo' : ''),
        ],
      };
      const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
      const fee = params.minFeePerByte * BigInt(size) * 2n + params.minFeePerAction * 2n;
      const env = envelopeFromSigned(signTransaction({ ...base, fee }, k.seed));
      txs.push(env.bytes);
      producer.submit(env);
    }
    const deadline = Date.now() + 20_000;
    while (producer.chain.height < 4n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (let h = 0n; h <= producer.chain.height && h <= 4n; h++) {
      const b = await producer.chain.blockAt(h);
      if (b) blocks.push(encode(blockCodec, b));
    }
  } finally {
    await producer.stop();
  }

  let handlers: NetworkHandlers | null = null;
  const follower = await UncNode.start({
    dataDir: dirs[1]!,
    genesis,
    rpcPort: 0,
    rpcHost: '127.0.0.1',
    logger: silentLogger,
    network: async (h: NetworkHandlers, _chain: Chain) => {
      handlers = h;
      return new FakeNetwork();
    },
  });
  if (!handlers) throw new Error('the follower did not start its network');
  return {
    genesis,
    chainId,
    blocks,
    txs,
    follower,
    handlers,
    async close() {
      await follower.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The targets

export interface FuzzSetup {
  targets: FuzzTarget[];
  close(): Promise<void>;
}

export interface TargetOptions {
  /** Start a real provider (loads ONNX Runtime and the OCR models: seconds) for 'provider-http'. */
  providerHttp?: boolean;
}

export async function createTargets(opts: TargetOptions = {}): Promise<FuzzSetup> {
  const fx = attestationFixtures();
  const chains = await startChains();
  const { chainId, follower, handlers } = chains;
  const genesis = parseGenesis(chains.genesis);
  const validators = genesisValidatorSet(genesis);
  const val = devValidator();
  const sender = devKey(0);

  // Receipts: a dev-soft chip signs one, a TPM one carries a quote (of another message).
  const chipKey = devKey(DEV_CHIP_INDEX);
  const devChip = chipRecord('dev-soft', devSoftChipId(chipKey.publicKey), chipKey.publicKey);
  const ak = parseCertificate(fx.tpm[0]!.akCertificate);
  const tpmChip = chipRecord('tpm2', tpm2ChipId(ak).chipId, ak.publicKey.der);
  const receipt = (chip: Chip): JobReceipt => ({
    chainId,
    leaseId: contentHash(utf8('lease')),
    chipId: chip.chipId,
    jobId: contentHash(utf8('job')),
    modelHash: contentHash(utf8('model')),
    inputHash: contentHash(utf8('input')),
    outputHash: contentHash(utf8('output')),
    startMs: 1_767_000_000_000n,
    durationMs: 1234n,
  });
  const devReceipt: SignedReceipt = {
    receipt: receipt(devChip),
    evidence: { type: 'dev-soft', signature: ed25519Sign(chipKey.seed, receiptDigest(receipt(devChip))) },
  };
  const tpmReceipt: SignedReceipt = {
    receipt: receipt(tpmChip),
    evidence: { type: 'tpm2', attest: fx.tpm[0]!.attest, signature: fx.tpm[0]!.signature },
  };

  /** Re-signs a mutated receipt with the dev chip's key, so it gets past the signature. */
  const resignReceipt = (_rng: Rng, input: Uint8Array): Uint8Array => {
    try {
      const decoded = strictDecode(signedReceiptCodec, input);
      const r = { ...decoded.receipt, chipId: devChip.chipId };
      const evidence: HeartbeatEvidence = {
        type: 'dev-soft',
        signature: ed25519Sign(chipKey.seed, receiptDigest(r)),
      };
      return encode(signedReceiptCodec, { receipt: r, evidence });
    } catch {
      return input;
    }
  };

  const registration: Evidence[] = [
    { type: 'tpm2', vendorId: 'tpmv', ...fx.tpm[0]!, chain: fx.tpm[0]!.chain },
    {
      type: 'nvidia-spdm',
      vendorId: 'nv',
      request: fx.nvidia.request,
      response: fx.nvidia.response,
      chain: fx.nvidia.chain,
    },
    {
      type: 'dev-soft',
      vendorId: 'dev',
      modelId: 'sim-h100',
      publicKey: chipKey.publicKey,
      signature: new Uint8Array(64).fill(3),
    },
    {
      type: 'rsa2048-allowlist',
      vendorId: 'rsa',
      publicKey: ak.publicKey.der,
      signature: new Uint8Array(256).fill(5),
    },
  ].map((e) => {
    const { label: _label, ...rest } = e as Evidence & { label?: string };
    return rest as Evidence;
  });

  // Transactions: every action type, signed by a dev account.
  const unsignedTxs: Uint8Array[] = allActions(chainId, devReceipt, registration).map((a, i) =>
    encode(transactionCodec, {
      chainId,
      signer: sender.publicKey,
      nonce: BigInt(i),
      fee: 10n ** 15n,
      expiresAt: 100n,
      actions: [a],
    }),
  );
  unsignedTxs.push(
    encode(transactionCodec, {
      chainId,
      signer: sender.publicKey,
      nonce: 99n,
      fee: 10n ** 15n,
      expiresAt: 100n,
      actions: allActions(chainId, devReceipt, []).slice(0, 6),
    }),
  );
  const signBody = (body: Uint8Array): Uint8Array => {
    const tx = strictDecode(transactionCodec, body);
    return encode(signedTransactionCodec, signTransaction(tx, sender.seed));
  };
  const txSeeds = [...unsignedTxs.map(signBody), ...chains.txs];
  /** Re-signs a mutated transaction when its body still decodes, so it reaches the checks beyond the signature. */
  const resignTx = (_rng: Rng, input: Uint8Array): Uint8Array => {
    if (input.length < 64) return input;
    try {
      return signBody(input.subarray(0, input.length - 64));
    } catch {
      return input;
    }
  };

  // Consensus messages, signed by the genesis validator.
  const block1 = chains.blocks[1] ? strictDecode(blockCodec, chains.blocks[1]) : null;
  const block0 = strictDecode(blockCodec, chains.blocks[0]!);
  const h1 = block1 ? blockHash(block1.header) : contentHash(utf8('b1'));
  const votes = (['prevote', 'precommit'] as const).flatMap((type) =>
    [h1, null].map((blockHashOrNil) =>
      signVote(
        chainId,
        { type, height: 1n, round: 0, blockHash: blockHashOrNil, validator: val.publicKey },
        val.seed,
      ),
    ),
  );
  const proposals = [-1, 0].map((polRound) =>
    signProposal(
      chainId,
      { height: 1n, round: 0, polRound, blockHash: h1, proposer: val.publicKey },
      val.seed,
    ),
  );
  const cert = certificateFromVotes([votes[2]!]);
  const evidenceSeeds = [
    encode(consensusEvidenceCodec, duplicateVoteEvidence(chainId, votes[0]!, votes[1]!)),
    encode(consensusEvidenceCodec, duplicateVoteEvidence(chainId, votes[2]!, votes[3]!)),
    encode(consensusEvidenceCodec, duplicateProposalEvidence(chainId, proposals[0]!, proposals[1]!)),
  ];
  /** Tag byte: which message the rest is (so one target covers them all). */
  const consensusKinds: Codec<unknown>[] = [
    voteCodec,
    proposalCodec,
    commitCertificateCodec,
    consensusEvidenceCodec,
  ] as Codec<unknown>[];
  const consensusSeeds = [
    ...votes.map((v) => Uint8Array.of(0, ...encode(voteCodec, v))),
    ...proposals.map((p) => Uint8Array.of(1, ...encode(proposalCodec, p))),
    Uint8Array.of(2, ...encode(commitCertificateCodec, cert)),
    ...evidenceSeeds.map((e) => Uint8Array.of(3, ...e)),
  ];

  // Gossip: the node's own entry point, every topic. The first byte picks the topic.
  const topics: GossipTopic[] = ['tx', 'proposal', 'vote', 'evidence'];
  const sentAt = 1_767_000_000_000n;
  const proposalMessages = block1
    ? proposals.map((proposal) =>
        encode(proposalMessageCodec, {
          proposal,
          block: block1,
          lastCommit: block0.commit,
          idsSignature: signProposalIds(chainId, proposal, block1, val.seed),
          sentAt,
        }),
      )
    : [];
  const gossipSeeds = [
    ...[chains.txs, txSeeds.slice(0, 4), [txSeeds[0]!]].map((batch) =>
      Uint8Array.of(0, ...encode(txBatchCodec, batch)),
    ),
    ...proposalMessages.map((m) => Uint8Array.of(1, ...m)),
    ...votes.map((vote) => Uint8Array.of(2, ...encode(voteMessageCodec, { vote, sentAt }))),
    ...evidenceSeeds.map((e) => Uint8Array.of(3, ...e)),
    Uint8Array.of(4, 1, 2, 3),
  ];
  /** Re-signs a vote or proposal whose fields were mutated, so it passes the signature check. */
  const resignGossip = (_rng: Rng, input: Uint8Array): Uint8Array => {
    try {
      if (input[0] === 2) {
        const m = strictDecode(voteMessageCodec, input.subarray(1));
        const vote = signVote(chainId, { ...m.vote, validator: val.publicKey }, val.seed);
        return Uint8Array.of(2, ...encode(voteMessageCodec, { ...m, vote }));
      }
      if (input[0] === 1) {
        const m = strictDecode(proposalMessageCodec, input.subarray(1));
        const proposal = signProposal(
          chainId,
          {
            ...m.proposal,
            blockHash: blockHash(m.block.header),
            height: m.block.header.height,
            proposer: val.publicKey,
          },
          val.seed,
        );
        const idsSignature = signProposalIds(chainId, proposal, m.block, val.seed);
        return Uint8Array.of(1, ...encode(proposalMessageCodec, { ...m, proposal, idsSignature }));
      }
    } catch {
      // Not decodable any more: send as is.
    }
    return input;
  };

  // RPC: the node's methods table, called as the server calls it.
  const api = createApi(follower);
  const methods = Object.keys(api.methods).sort();
  const subscriptions = Object.keys(api.subscriptions ?? {}).sort();
  const hashes = [
    ...chains.blocks.map((b) => toHex(blockHash(strictDecode(blockCodec, b).header))),
    ...chains.txs.map((t) => toHex(envelopeFromBytes(t).hash)),
    toHex(devChip.chipId),
  ];
  const addresses = [sender, devKey(1), val].map((k) => encodeAddress(k.address));
  const rpcExtras: Json[] = [...hashes, ...addresses, toHex(chains.txs[0]!), 'latest', 0, 1, 2, 3, 1000];
  const rpcSeeds = [
    ...methods.flatMap((m) => [
      jsonSeed({ m, p: [] }),
      jsonSeed({ m, p: [1] }),
      jsonSeed({ m, p: [hashes[0]] }),
      jsonSeed({ m, p: [addresses[0], true] }),
      jsonSeed({
        m,
        p: { block: 1, full: true, hash: hashes[5], address: addresses[0], chipId: hashes.at(-1) },
      }),
    ]),
    jsonSeed({ m: 'unc_sendTransaction', p: [toHex(txSeeds[0]!)] }),
    jsonSeed({ m: 'unc_sendTransactions', p: [[toHex(txSeeds[0]!), toHex(txSeeds[1]!)]] }),
    jsonSeed({ m: 'unc_getBlocks', p: { from: 3, count: 2 } }),
    jsonSeed({ m: 'unc_getOffers', p: [{ provider: addresses[0], status: 'open' }] }),
    ...subscriptions.map((s) => jsonSeed({ s, p: [hashes[5]] })),
  ];

  // What a node answers a light client: an account with its Merkle proof, and the header.
  const proofSeeds: Uint8Array[] = [];
  for (const address of addresses) {
    const account = await api.methods.unc_getAccount!([address, true], { transport: 'http' });
    const header = await api.methods.unc_getHeader!([], { transport: 'http' });
    proofSeeds.push(jsonSeed({ account, header }));
  }

  // Provider: signed request headers, as the renter's client makes them.
  const lease = contentHash(utf8('lease'));
  const renter = devKey(7);
  const now = 1_767_000_000_000;
  const auth = new RequestAuthenticator(chainId, { windowMs: 60_000, maxNonces: 200_000, now: () => now });
  const routes = [
    { method: 'POST', path: '/v1/jobs' },
    { method: 'POST', path: '/v1/models' },
    { method: 'GET', path: `/v1/jobs/${'ab'.repeat(32)}` },
  ];
  const providerSeeds = routes.flatMap((r, i) =>
    [utf8('{"model":"ocr","image":"iVBORw0KGgo="}'), new Uint8Array()].map((body) =>
      jsonSeed({
        route: i,
        body: toHex(body),
        headers: signJobRequest(
          renter.seed,
          { chainId, leaseId: lease, method: r.method, path: r.path, body },
          { timestampMs: BigInt(now), nonce: BigInt(i + 1) },
        ),
      }),
    ),
  );
  const tensorSeeds = [
    jsonSeed({ x: { type: 'float32', dims: [1, 2], data: Buffer.alloc(8).toString('base64') } }),
    jsonSeed({
      a: { type: 'int64', dims: [3], data: Buffer.alloc(24).toString('base64') },
      b: { type: 'bool', dims: [], data: 'AA==' },
    }),
  ];

  const tpmTrust = {
    vendors: [
      {
        vendorId: 'tpmv',
        profile: 'tpm2' as const,
        roots: [fx.tpmRoot],
        revokedSerials: [],
        revokedChipIds: [],
      },
      {
        vendorId: 'nv',
        profile: 'nvidia-spdm' as const,
        roots: fx.nvidia.roots,
        revokedSerials: [],
        revokedChipIds: [],
      },
      {
        vendorId: 'rsa',
        profile: 'rsa2048-allowlist' as const,
        roots: [],
        revokedSerials: [],
        revokedChipIds: [],
        allowList: {},
      },
      { vendorId: 'dev', profile: 'dev-soft' as const, roots: [], revokedSerials: [], revokedChipIds: [] },
    ],
    devSoftEnabled: true,
  };

  const gossipTally = new Map<string, number>();

  // Every codec an outsider's bytes reach, decoded strictly and re-encoded (canonical encoding).
  const wireCodecs: [Codec<unknown>, Uint8Array[]][] = (
    [
      [voteMessageCodec, gossipSeeds.filter((g) => g[0] === 2).map((g) => g.subarray(1))],
      [proposalMessageCodec, proposalMessages],
      [txBatchCodec, gossipSeeds.filter((g) => g[0] === 0).map((g) => g.subarray(1))],
      [statusCodec, [encode(statusCodec, handlers.status())]],
      [blockRangeCodec, [encode(blockRangeCodec, { from: 1n, to: 64n })]],
      [
        merkleProofCodec,
        [follower.chain.state.trie.prove(trieKey(accountKey(sender.address)))].map((p) =>
          encode(merkleProofCodec, p),
        ),
      ],
      [consensusEvidenceCodec, evidenceSeeds],
      [evidenceCodec, registration.map((e) => encode(evidenceCodec, e))],
    ] as [Codec<unknown>, Uint8Array[]][]
  ).filter(([, seeds]) => seeds.length > 0);

  const targets: FuzzTarget[] = [
    {
      name: 'codec',
      description: 'the wire codecs of gossip, sync and proofs: strict decode, canonical re-encode',
      weight: 6,
      seeds: wireCodecs.flatMap(([, seeds], i) => seeds.map((b) => Uint8Array.of(i, ...b))),
      run(input) {
        const entry = wireCodecs[(input[0] ?? 0) % wireCodecs.length]!;
        roundTrip(entry[0], input.subarray(1));
      },
      classified: isUnc,
    },
    {
      name: 'tx',
      description: 'signed transactions: envelopeFromBytes, signature, canonical round trip, txToJson',
      weight: 14,
      seeds: txSeeds,
      fixup: resignTx,
      run(input) {
        roundTrip(signedTransactionCodec, input);
        const env = envelopeFromBytes(input);
        verifyEnvelopeSignature(env);
        txToJson(env);
      },
      classified: isUnc,
    },
    {
      name: 'block',
      description: 'blocks: blockCodec, canonical round trip, the transactions inside, blockToJson',
      weight: 6,
      seeds: chains.blocks,
      run(input) {
        const block: Block = roundTrip(blockCodec, input);
        const envs = block.txs.map((t) => envelopeFromBytes(t));
        // Blocks are rendered (RPC, explorer) only once committed, and a committed block's time is
        // checked against the previous block and the clock: far from the 8.64e15 ms a Date holds.
        if (block.header.time < 4_000_000_000_000n) blockToJson(block, blockHash(block.header), envs, true);
      },
      classified: isUnc,
    },
    {
      name: 'consensus',
      description: 'votes, proposals, commit certificates, equivocation evidence: decode and verify',
      weight: 8,
      seeds: consensusSeeds,
      run(input) {
        const codec = consensusKinds[input[0] ?? 0];
        if (!codec) throw new DecodeError('no such message kind');
        const v = roundTrip(codec, input.subarray(1)) as never;
        if (input[0] === 0) verifyVoteSignature(chainId, v);
        else if (input[0] === 1) verifyProposalSignature(chainId, v);
        else if (input[0] === 2) verifyCommitCertificate(chainId, validators, v);
        else verifyConsensusEvidence(chainId, validators, v);
      },
      classified: isUnc,
    },
    {
      name: 'gossip',
      description: "the node's onGossip for tx, proposal, vote and evidence messages",
      weight: 14,
      seeds: gossipSeeds,
      fixup: resignGossip,
      async run(input) {
        const topic = topics[(input[0] ?? 0) % topics.length]!;
        const verdict = await handlers.onGossip(topic, input.subarray(1), 'fuzz-peer');
        if (verdict !== 'accept' && verdict !== 'ignore' && verdict !== 'reject')
          throw new Error(`onGossip returned ${String(verdict)}, not a verdict`);
        const key = `${topic} ${verdict}`;
        gossipTally.set(key, (gossipTally.get(key) ?? 0) + 1);
        return verdict !== 'reject';
      },
      tally: gossipTally,
      // onGossip must answer every message with a verdict: any exception is a bug.
      classified: () => false,
    },
    {
      name: 'sync',
      description:
        'sync frames: status answers, block-range requests (and serving them), blocks applied by sync',
      weight: 6,
      seeds: [
        Uint8Array.of(0, ...encode(statusCodec, handlers.status())),
        Uint8Array.of(1, ...new Uint8Array(8), 0, 0, 0, 0, 0, 0, 0, 3),
        Uint8Array.of(1, ...new Uint8Array(7), 2, ...new Uint8Array(7), 65),
        ...chains.blocks.map((b) => Uint8Array.of(2, ...b)),
      ],
      async run(input) {
        const body = input.subarray(1);
        switch ((input[0] ?? 0) % 3) {
          case 0:
            decodeStatusFrame(body);
            return;
          case 1: {
            const { from, to } = decodeBlockRangeRequest(body);
            await handlers.blocks(from, to);
            return;
          }
          default:
            await chainSyncTarget(follower.chain).applyBlock(body);
        }
      },
      classified: isUnc,
    },
    {
      name: 'evidence',
      description: 'registration evidence as transactions carry it: evidenceCodec and verifyEvidence',
      weight: 4,
      seeds: registration.map((e) => encode(evidenceCodec, e)),
      run(input) {
        const ev = roundTrip(evidenceCodec, input);
        try {
          verifyEvidence(ev, tpmTrust, TPM_AT, TPM_MESSAGE);
        } catch (err) {
          // verifyEvidence rewraps any unexpected exception as ATTEST_MALFORMED; one that got that
          // far is still a bug in a verifier.
          if (err instanceof AttestationError && err.message.startsWith('evidence could not be verified:'))
            throw new Error(`masked: ${err.message}`);
          throw err;
        }
      },
      classified: isUnc,
    },
    {
      name: 'der',
      description: 'the strict DER reader: parseDer, children, every primitive reader on every node',
      weight: 8,
      seeds: fx.certificates,
      run(input) {
        exerciseDer(der.parseDer(input), 0);
      },
      classified: isAttestation,
    },
    {
      name: 'x509',
      description:
        'certificates: parseCertificate, SANs, hardware module name, TPM and NVIDIA model, TcbInfo FWIDs',
      weight: 8,
      seeds: fx.certificates,
      run(input) {
        const cert = parseCertificate(input);
        subjectAltNames(cert);
        hardwareModuleName(cert);
        tpmModel(cert);
        nvidiaModel(cert);
        tcbInfoFwids(cert);
        tpm2ChipId(cert);
        parseSubjectPublicKeyInfo(cert.publicKey.der);
      },
      classified: isAttestation,
    },
    {
      name: 'tpm',
      description: 'TPM 2.0 structures: TPMS_ATTEST, TPMT_SIGNATURE, TPM2B_PUBLIC',
      weight: 8,
      seeds: [
        ...fx.tpm.map((t) => Uint8Array.of(0, ...t.attest)),
        ...fx.tpm.map((t) => Uint8Array.of(1, ...t.signature)),
        ...fx.tpmPublics.map((p) => Uint8Array.of(2, ...p)),
      ],
      run(input) {
        const body = input.subarray(1);
        const kind = (input[0] ?? 0) % 3;
        if (kind === 0) parseTpmsAttest(body);
        else if (kind === 1) parseTpmtSignature(body);
        else parseTpm2bPublic(body);
      },
      classified: isAttestation,
    },
    {
      name: 'tpm2-verify',
      description: 'verifyTpm2 end to end with one mutated piece (attest, signature, AK certificate, chain)',
      weight: 2,
      seeds: fx.tpm.map((t) => packPieces([t.attest, t.signature, t.akCertificate, ...t.chain])),
      run(input) {
        const p = unpackPieces(input, 4);
        if (!p) throw new AttestationError('ATTEST_MALFORMED', '(harness framing)');
        verifyTpm2({
          attest: p[0]!,
          signature: p[1]!,
          akCertificate: p[2]!,
          chain: [p[3]!],
          roots: [fx.tpmRoot],
          revokedSerials: new Set(),
          atMs: TPM_AT,
          expectedMessage: TPM_MESSAGE,
          vendorId: 'tpmv',
        });
      },
      classified: isAttestation,
    },
    {
      name: 'spdm',
      description: 'NVIDIA SPDM GET_MEASUREMENTS request and MEASUREMENTS response parsing',
      weight: 6,
      seeds: [packPieces([fx.nvidia.request, fx.nvidia.response])],
      run(input) {
        const p = unpackPieces(input, 2);
        if (!p) throw new AttestationError('ATTEST_MALFORMED', '(harness framing)');
        parseSpdmMeasurements(p[0]!, p[1]!);
      },
      classified: isAttestation,
    },
    {
      name: 'nvidia-verify',
      description: 'verifyNvidiaSpdm end to end with one mutated piece (request, response, device chain)',
      weight: 1,
      seeds: [packPieces([fx.nvidia.request, fx.nvidia.response, ...fx.nvidia.chain])],
      run(input) {
        const p = unpackPieces(input, 2 + fx.nvidia.chain.length);
        if (!p) throw new AttestationError('ATTEST_MALFORMED', '(harness framing)');
        verifyNvidiaSpdm({
          request: p[0]!,
          response: p[1]!,
          chain: p.slice(2),
          roots: fx.nvidia.roots,
          revokedSerials: new Set(),
          atMs: NVIDIA_AT,
          expectedMessage: fx.nvidia.nonce,
          vendorId: 'nv',
        });
      },
      classified: isAttestation,
    },
    {
      name: 'receipt',
      description:
        'signed job receipts: decode, verifyReceipt against the chip record, the sdk offline check',
      weight: 5,
      seeds: [encode(signedReceiptCodec, devReceipt), encode(signedReceiptCodec, tpmReceipt)],
      fixup: resignReceipt,
      run(input) {
        const signed = roundTrip(signedReceiptCodec, input);
        const chip = signed.evidence.type === 'tpm2' ? tpmChip : devChip;
        verifyReceipt(signed, chip, chainId);
        // The renter's side: the hex form a provider returns.
        verifyReceiptOffline(toHex(input), chip, chainId);
        decodeSignedReceipt(`0x${toHex(input)}`);
      },
      classified: (err) =>
        isUnc(err) ||
        // decodeSignedReceipt's own refusal of non-hex text (the renter's CLI prints it).
        (err instanceof Error && err.message === 'a signed receipt must be hex'),
    },
    {
      name: 'heartbeat',
      description: 'heartbeat evidence (challenge answers) against a registered chip: decode and verify',
      weight: 3,
      seeds: [
        encode(heartbeatEvidenceCodec, devReceipt.evidence),
        encode(heartbeatEvidenceCodec, tpmReceipt.evidence),
        encode(heartbeatEvidenceCodec, {
          type: 'nvidia-spdm',
          request: fx.nvidia.request,
          response: fx.nvidia.response,
        }),
        encode(heartbeatEvidenceCodec, { type: 'rsa2048-allowlist', signature: new Uint8Array(256) }),
      ],
      run(input) {
        const ev: HeartbeatEvidence = roundTrip(heartbeatEvidenceCodec, input);
        const chip = { ...(ev.type === 'tpm2' ? tpmChip : devChip), profile: ev.type } as Chip;
        verifyReceipt({ receipt: receipt(chip), evidence: ev }, chip, chainId);
      },
      classified: isUnc,
    },
    {
      name: 'rpc',
      description: 'every JSON-RPC method and subscription of the node, with random parameters',
      weight: 8,
      kind: 'json',
      seeds: rpcSeeds,
      jsonExtras: rpcExtras,
      async run(input) {
        const call = jsonOf(input) as { m?: unknown; s?: unknown; p?: unknown } | undefined;
        if (!call || typeof call !== 'object') throw new UncError('FUZZ_SKIP', 'not a call');
        if (typeof call.s === 'string' && api.subscriptions && Object.hasOwn(api.subscriptions, call.s)) {
          const stop = api.subscriptions[call.s]!(call.p, () => {});
          stop();
          return;
        }
        const name = typeof call.m === 'string' && Object.hasOwn(api.methods, call.m) ? call.m : null;
        if (!name) throw new UncError('FUZZ_SKIP', 'no such method');
        await api.methods[name]!(call.p, { transport: 'http' });
      },
      classified: isRpcClassified,
    },
    {
      name: 'proof',
      description:
        "a light client's check of a node's answer: verifyAccountProof (header, Merkle proof, account)",
      weight: 3,
      kind: 'json',
      seeds: proofSeeds,
      jsonExtras: rpcExtras,
      run(input) {
        const answer = jsonOf(input) as { account?: unknown; header?: unknown } | undefined;
        if (!answer || typeof answer !== 'object') throw new ProofError('(not an answer)');
        verifyAccountProof(answer.account as AccountJson, answer.header as HeaderJson);
      },
      classified: (err) => err instanceof ProofError,
    },
    {
      name: 'rpc-http',
      description: 'the JSON-RPC server over HTTP: request envelopes, batches, malformed JSON, results',
      weight: 0.5,
      kind: 'json',
      seeds: [
        jsonSeed([
          { jsonrpc: '2.0', id: 1, method: 'unc_getBlock', params: [1, true] },
          { jsonrpc: '2.0', method: 'unc_status' },
          { jsonrpc: '2.0', id: 'a', method: 'unc_getAccount', params: { address: addresses[0] } },
        ]),
        ...rpcSeeds.map((seed) => {
          const call = JSON.parse(seed.toString()) as { m?: string; s?: string; p?: unknown };
          return jsonSeed(
            call.m
              ? { jsonrpc: '2.0', id: 1, method: call.m, params: call.p }
              : { jsonrpc: '2.0', id: 'x', method: 'unc_subscribe', params: [call.s, call.p] },
          );
        }),
      ],
      jsonExtras: [...rpcExtras, '2.0', ...methods],
      async run(input) {
        const res = await fetch(follower.rpcUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: input,
        });
        const text = await res.text();
        // The server answers -32603 only for exceptions no handler classified: those are bugs.
        if (res.status >= 500 || text.includes('"code":-32603')) {
          throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
        }
      },
      classified: () => false,
    },
    {
      name: 'provider',
      description:
        "the provider's renter-signed request headers (RequestAuthenticator.verify) and job inputs",
      weight: 4,
      kind: 'json',
      seeds: [...providerSeeds, ...tensorSeeds.map((t) => jsonSeed({ inputs: JSON.parse(t.toString()) }))],
      jsonExtras: [
        toHex(lease),
        toHex(renter.publicKey),
        String(now),
        '1',
        'ocr',
        'float32',
        'int64',
        'AAAA',
      ],
      run(input) {
        const req = jsonOf(input) as
          | { route?: unknown; headers?: unknown; body?: unknown; inputs?: unknown }
          | undefined;
        if (req && typeof req === 'object' && 'inputs' in req) {
          try {
            tensorsFromJson(req.inputs);
          } catch (err) {
            // The provider answers these with 400 BAD_INPUT: a plain Error with the reason.
            if (err instanceof Error && err.constructor === Error)
              throw new HttpError(400, 'BAD_INPUT', err.message);
            throw err;
          }
          return;
        }
        if (!req || typeof req !== 'object' || typeof req.headers !== 'object' || req.headers === null)
          throw new HttpError(401, 'AUTH_MISSING', '(no headers)');
        const route =
          routes[typeof req.route === 'number' ? Math.abs(Math.trunc(req.route)) % routes.length : 0] ??
          routes[0]!;
        // Node's HTTP parser hands over header values as strings (string[] for set-cookie).
        const headers: Record<string, string | string[] | undefined> = {};
        const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
        for (const [k, v] of Object.entries(req.headers)) {
          headers[k.toLowerCase()] = Array.isArray(v) ? v.map(text) : v === null ? undefined : text(v);
        }
        // The declared body hash is what the signature covers; the body itself is hashed as it
        // streams in, after these checks (the provider-http target covers that).
        auth.verify(route.method, route.path, headers);
      },
      classified: (err) => err instanceof HttpError,
    },
  ];
  const providerHttp =
    opts.providerHttp === false ? null : await providerHttpTarget(chainId, chipKey.seed, renter.seed, lease);
  if (providerHttp) targets.push(providerHttp.target);
  return {
    targets,
    async close() {
      await providerHttp?.close();
      await chains.close();
    },
  };
}

/**
 * The provider's HTTP API, for real: a dev-soft chip, one active lease in memory, a model store in
 * a temp folder, OCR loaded. Requests are signed at send time (the clock moves), so what is mutated
 * is the request itself: method, path, body, lease, extra headers, signed or not.
 */
async function providerHttpTarget(
  chainId: string,
  chipSeed: Uint8Array,
  renterSeed: Uint8Array,
  lease: Uint8Array,
): Promise<{ target: FuzzTarget; close(): Promise<void> }> {
  const renter = { seed: renterSeed, publicKey: ed25519PublicKey(renterSeed) };
  const chipKey = { seed: chipSeed };
  const providerTally = new Map<string, number>();
  const providerDir = mkdtempSync(join(tmpdir(), 'unc-fuzz-provider-'));
  const providerSigner = new DevSoftSigner(chipKey.seed, 'sim-h100', 'fuzz-chip');
  const providerLeases = new Map<string, ProviderLease>([
    [
      toHex(lease),
      {
        id: toHex(lease),
        chipId: toHex(await providerSigner.chipId()),
        renterPublicKey: toHex(renter.publicKey),
        status: 'active',
      },
    ],
  ]);
  const provider = new ProviderServer({
    chainId,
    signers: [providerSigner],
    leases: { getLease: async (id) => providerLeases.get(id) ?? null },
    modelDir: providerDir,
    maxBodyBytes: 256 * 1024,
    maxModelBytes: 64 * 1024,
    concurrency: 1,
    maxQueued: 4,
    logger: silentLogger,
  });
  const providerUrl = new URL(await provider.start());
  let providerNonce = 0n;
  const providerRequest = async (req: {
    method: string;
    path: string;
    body: Uint8Array;
    lease: Uint8Array;
    sign: boolean;
    extra: Record<string, string>;
  }): Promise<{ status: number; text: string }> => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...req.extra };
    if (req.sign) {
      Object.assign(
        headers,
        signJobRequest(
          renter.seed,
          { chainId, leaseId: req.lease, method: req.method, path: req.path, body: req.body },
          { nonce: ++providerNonce },
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const r = httpRequest(
        {
          host: providerUrl.hostname,
          port: providerUrl.port,
          method: req.method,
          path: req.path,
          headers: { ...headers, 'content-length': String(req.body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          );
          res.on('error', reject);
        },
      );
      r.on('error', reject);
      r.end(req.body);
    });
  };
  const affine = new Uint8Array(readFileSync(join(ROOT, 'packages/miner/test/fixtures/affine.onnx')));
  const affineHash = toHex(contentHash(affine));
  await providerRequest({ method: 'POST', path: '/v1/models', body: affine, lease, sign: true, extra: {} });
  // A tiny PNG (1×1) and the OCR sample, for the image decoder behind OCR jobs.
  const tinyPng =
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';
  const providerHttpSeeds = [
    {
      method: 'POST',
      path: '/v1/jobs',
      body: JSON.stringify({ model: 'ocr', image: tinyPng, wait: false }),
      sign: true,
    },
    {
      method: 'POST',
      path: '/v1/jobs',
      body: JSON.stringify({
        model: affineHash,
        inputs: { x: { type: 'float32', dims: [1, 4], data: Buffer.alloc(16).toString('base64') } },
      }),
      sign: true,
    },
    { method: 'POST', path: '/v1/models', bodyHex: toHex(affine), sign: true },
    { method: 'GET', path: `/v1/jobs/${'ab'.repeat(32)}`, body: '', sign: true },
    { method: 'GET', path: '/v1/health', body: '', sign: false },
    {
      method: 'POST',
      path: '/v1/jobs',
      body: '{"model":"ocr"}',
      sign: false,
      extra: { 'x-unc-lease': toHex(lease) },
    },
  ].map(jsonSeed);

  const target: FuzzTarget = {
    name: 'provider-http',
    description:
      "the provider's HTTP API: routes, body limits, signed headers, job bodies, images, model uploads",
    weight: 0.5,
    kind: 'json',
    persistInput: true,
    seeds: providerHttpSeeds,
    jsonExtras: [
      affineHash,
      toHex(lease),
      'ocr',
      tinyPng,
      '/v1/jobs',
      '/v1/models',
      'POST',
      'GET',
      'float32',
    ],
    async run(input) {
      const req = jsonOf(input) as Record<string, unknown> | undefined;
      if (!req || typeof req !== 'object') return false;
      const method = typeof req.method === 'string' && /^[A-Z]{1,10}$/.test(req.method) ? req.method : 'POST';
      const path =
        typeof req.path === 'string' && /^\/[\x21-\x7e]{0,300}$/.test(req.path) ? req.path : '/v1/jobs';
      const body =
        typeof req.bodyHex === 'string'
          ? new Uint8Array(Buffer.from(req.bodyHex, 'hex'))
          : utf8(typeof req.body === 'string' ? req.body : JSON.stringify(req.body ?? null));
      const extra: Record<string, string> = {};
      if (req.extra && typeof req.extra === 'object') {
        for (const [k, v] of Object.entries(req.extra)) {
          // Only what Node's HTTP client can send (header names are tokens, values visible ASCII).
          if (/^[a-z0-9-]{1,40}$/.test(k) && typeof v === 'string' && /^[\x20-\x7e]{0,200}$/.test(v))
            extra[k] = v;
        }
      }
      delete extra['content-length'];
      const leaseId =
        typeof req.lease === 'string' && /^[0-9a-f]{64}$/.test(req.lease) ? fromHex(req.lease, 32) : lease;
      const { status, text } = await providerRequest({
        method,
        path,
        body,
        lease: leaseId,
        sign: req.sign === true,
        extra,
      });
      providerTally.set(String(status), (providerTally.get(String(status)) ?? 0) + 1);
      // 500 is the provider's answer to an exception it did not classify.
      if (status >= 500 && status !== 503) throw new Error(`HTTP ${status}: ${text.slice(0, 300)}`);
      return status < 400;
    },
    tally: providerTally,
    classified: () => false,
  };
  return {
    target,
    async close() {
      await provider.stop();
      rmSync(providerDir, { recursive: true, force: true });
    },
  };
}
