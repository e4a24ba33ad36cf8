/**
 * Merkle proofs of state records for the `proof` flag of unc_getChip and unc_getLease, in
 * unc_getAccount's format: the head height and state root, the record's proof and stored value
 * (null: proven absent), plus `related`, every other key the answer's derived fields read (a
 * chip's effective status and liveness, a lease's offer). Those are found by running the same
 * function the client runs (core effectiveStatus, sdk chipLivenessJson, core getOffer) over a
 * reader that records the keys it is asked for: the client derives the keys itself and only looks
 * entries up by them (docs/rpc.md "Light clients").
 */
import { encode, type MerkleTrie, merkleProofCodec, type StateReader, toHex, trieKey } from '@unc/core';
import type { ProvenKeyEntryJson } from '@unc/sdk';
import { RpcError, RpcErrorCode } from './rpc/server.js';

export interface RecordProof {
  height: number;
  stateRoot: string;
  proof: string;
  value: string | null;
  related: ProvenKeyEntryJson[];
}

interface ProvableState extends StateReader {
  trie: MerkleTrie;
}

/** Proves `key` and every key `derive` reads from the state, at the head whose root is `stateRoot`. */
export function proveRecord(
  state: ProvableState,
  head: { height: bigint; stateRoot: Uint8Array },
  key: Uint8Array,
  derive?: (reader: StateReader) => void,
): RecordProof {
  const raw = state.get(key);
  const out: RecordProof = {
    height: Number(head.height),
    stateRoot: toHex(head.stateRoot),
    proof: toHex(encode(merkleProofCodec, state.trie.prove(trieKey(key)))),
    value: raw ? toHex(raw) : null,
    related: [],
  };
  if (derive) {
    const seen = new Set<string>([toHex(key)]);
    const reads: Uint8Array[] = [];
    derive({
      get(k: Uint8Array): Uint8Array | undefined {
        const id = toHex(k);
        if (!seen.has(id)) {
          seen.add(id);
          reads.push(k.slice());
        }
        return state.get(k);
      },
    });
    for (const k of reads) {
      const v = state.get(k);
      out.related.push({
        key: toHex(k),
        value: v ? toHex(v) : null,
        proof: toHex(encode(merkleProofCodec, state.trie.prove(trieKey(k)))),
      });
    }
  }
  return out;
}

/**
 * NOT_FOUND, as without `proof`, carrying the record's proof of absence in `error.data.absence`:
 * a light client proves the record is not there instead of taking the node's word for it.
 */
export function notFoundProven(what: string, absence: RecordProof): RpcError {
  return new RpcError(RpcErrorCode.APPLICATION_ERROR, `${what} not found`, { reason: 'NOT_FOUND', absence });
}
