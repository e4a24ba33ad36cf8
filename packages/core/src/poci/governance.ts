/**
 * The governance authority: a multisig of keys named in genesis. A proposal takes effect when a
 * transaction carries approvals from at least `threshold` distinct governance keys over
 * (chain id, governance nonce, proposal); the nonce makes every approval single-use.
 */
import { concatBytes, toHex, utf8 } from '../bytes.js';
import { ed25519Verify } from '../crypto/ed25519.js';
import {
  bool,
  type Codec,
  decode,
  encode,
  list,
  string,
  struct,
  taggedUnion,
  u8,
  u64,
} from '../encoding/codec.js';
import { hash32, publicKey, signature64 } from '../encoding/primitives.js';
import { ValidationError } from '../errors.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';
import { type PociParams, pociParamsCodec } from './params.js';
import {
  type AllowlistEntry,
  allowlistEntryCodec,
  type ChipModel,
  chipModelCodec,
  idCodec,
  type Vendor,
  vendorCodec,
} from './registry.js';

export interface Governance {
  threshold: number;
  keys: Uint8Array[];
  /** Executed proposals so far; approvals sign the next value. */
  nonce: bigint;
}

export const governanceCodec: Codec<Governance> = struct<Governance>('Governance', {
  threshold: u8,
  keys: list(publicKey, 32, 'keys'),
  nonce: u64,
});

export const GOVERNANCE_KEY = new Uint8Array([StateSpace.system, 0x04]);

export function getGovernance(state: StateReader): Governance {
  const raw = state.get(GOVERNANCE_KEY);
  if (!raw) throw new ValidationError('NO_GOVERNANCE', 'this chain has no governance authority');
  return decode(governanceCodec, raw);
}

export function putGovernance(state: StateOverlay, g: Governance): void {
  state.set(GOVERNANCE_KEY, encode(governanceCodec, g));
}

export type GovProposal =
  | { type: 'setVendor'; vendor: Vendor }
  | { type: 'setModel'; model: ChipModel }
  | { type: 'setAllowlist'; entry: AllowlistEntry }
  | { type: 'revokeSerial'; vendorId: string; serial: string; revoked: boolean }
  | { type: 'revokeChip'; chipId: Uint8Array; reason: string }
  | { type: 'setPociParams'; params: PociParams }
  /** CONSENSUS CHANGE (branch modelpower): the model's chips stop counting (revoked) at once. */
  | { type: 'removeModel'; vendorId: string; modelId: string };

export const govProposalCodec: Codec<GovProposal> = taggedUnion<GovProposal>('GovProposal', {
  setVendor: [1, struct('SetVendor', { vendor: vendorCodec })],
  setModel: [2, struct('SetModel', { model: chipModelCodec })],
  setAllowlist: [3, struct('SetAllowlist', { entry: allowlistEntryCodec })],
  revokeSerial: [
    4,
    struct('RevokeSerial', { vendorId: idCodec, serial: string(128, 'serial'), revoked: bool }),
  ],
  revokeChip: [5, struct('RevokeChip', { chipId: hash32, reason: string(256, 'reason') })],
  setPociParams: [6, struct('SetPociParams', { params: pociParamsCodec })],
  removeModel: [7, struct('RemoveModel', { vendorId: idCodec, modelId: idCodec })],
});

export interface Approval {
  publicKey: Uint8Array;
  signature: Uint8Array;
}

export const approvalCodec: Codec<Approval> = struct<Approval>('Approval', {
  publicKey,
  signature: signature64,
});

export function governanceSigningBytes(chainId: string, nonce: bigint, proposal: GovProposal): Uint8Array {
  const n = new Uint8Array(8);
  new DataView(n.buffer).setBigUint64(0, nonce);
  return concatBytes(utf8(`UNC/gov\0${chainId}\0`), n, encode(govProposalCodec, proposal));
}

/** Checks the approvals against the current governance keys and threshold. */
export function checkApprovals(
  g: Governance,
  chainId: string,
  proposal: GovProposal,
  approvals: Approval[],
): void {
  const message = governanceSigningBytes(chainId, g.nonce, proposal);
  const counted = new Set<string>();
  for (const a of approvals) {
    const id = toHex(a.publicKey);
    if (!g.keys.some((k) => toHex(k) === id)) {
      throw new ValidationError(
        'GOV_NOT_AUTHORITY',
        `approval by ${id.slice(0, 16)}… who is not a governance key`,
      );
    }
    if (counted.has(id)) throw new ValidationError('GOV_DUPLICATE_APPROVAL', 'the same key approved twice');
    if (!ed25519Verify(a.publicKey, message, a.signature)) {
      throw new ValidationError(
        'GOV_BAD_APPROVAL',
        `approval by ${id.slice(0, 16)}… does not verify (wrong proposal, chain or governance nonce ${g.nonce})`,
      );
    }
    counted.add(id);
  }
  if (counted.size < g.threshold) {
    throw new ValidationError('GOV_THRESHOLD', `${counted.size} approvals, the threshold is ${g.threshold}`);
  }
}

export const approvalsCodec = list(approvalCodec, 32, 'approvals');
