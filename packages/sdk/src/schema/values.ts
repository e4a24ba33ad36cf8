/**
 * The value schemas the RPC parameters are built from. Each checks what a client sends and turns it
 * into what the node works with (hex → bytes, bech32 → account bytes, decimal → bigint), so a
 * handler never sees an unchecked value. Every failure message says what was expected; the server
 * prefixes it with the parameter's name.
 */
import { decodeAddress, fromHex } from '@unc/core';
import * as v from 'valibot';

const HEX64 = /^(0x)?[0-9a-fA-F]{64}$/;

/** 32 bytes as 64 hex digits (a hash or an id). */
export const Hash32 = v.pipe(
  v.string('must be a string of 64 hex digits'),
  v.regex(HEX64, 'must be 64 hex digits'),
  v.description('32 bytes as 64 lowercase hex digits (a `0x` prefix is accepted)'),
  v.transform((s) => fromHex(s, 32)),
);

/** Any number of bytes as hex (a whole encoded transaction). */
export const HexBytes = v.pipe(
  v.string('must be a hex string'),
  v.regex(/^(0x)?([0-9a-fA-F]{2})*$/, 'must be an even number of hex digits'),
  v.description('bytes as lowercase hex'),
  v.transform((s) => fromHex(s)),
);

/** A bech32 account address, checked (prefix, checksum, length) and decoded to its 20 bytes. */
export const Address = v.pipe(
  v.string('must be an address string'),
  v.regex(/^unc1[0-9a-z]+$/i, 'must be a bech32 address (unc1…)'),
  v.description('a bech32 account address, `unc1…`'),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    try {
      return decodeAddress(dataset.value);
    } catch (err) {
      addIssue({ message: (err as Error).message });
      return NEVER;
    }
  }),
);

const NON_NEGATIVE = 'must be a non-negative integer';

/** A height (or epoch number): a safe integer, or a decimal string of up to 19 digits. */
export const Height = v.pipe(
  v.union(
    [
      v.pipe(v.number(), v.safeInteger(NON_NEGATIVE), v.minValue(0, NON_NEGATIVE)),
      v.pipe(v.string(), v.regex(/^\d{1,19}$/, NON_NEGATIVE)),
    ],
    NON_NEGATIVE,
  ),
  v.description('a non-negative integer (a number, or a decimal string for values beyond 2^53)'),
  v.transform((h) => BigInt(h)),
);

/** Which block: the head, a height or a block hash. */
export type BlockRef =
  | { kind: 'latest' }
  | { kind: 'height'; height: bigint }
  | { kind: 'hash'; hash: Uint8Array };

const BLOCK_REF = 'must be a height, a 64-hex-digit block hash or "latest"';

export const BlockRefSchema = v.pipe(
  v.union(
    [
      v.literal('latest'),
      v.pipe(v.string(), v.regex(HEX64, BLOCK_REF)),
      v.pipe(v.number(), v.safeInteger(BLOCK_REF), v.minValue(0, BLOCK_REF)),
      v.pipe(v.string(), v.regex(/^\d{1,19}$/, BLOCK_REF)),
    ],
    BLOCK_REF,
  ),
  v.description('a height, a 64-hex-digit block hash, or "latest"'),
  v.transform((ref): BlockRef => {
    if (ref === 'latest') return { kind: 'latest' };
    if (typeof ref === 'string' && ref.length >= 64) return { kind: 'hash', hash: fromHex(ref, 32) };
    return { kind: 'height', height: BigInt(ref) };
  }),
);

/** An integer in [min, max]. */
export function intRange(min: number, max: number) {
  return v.pipe(
    v.number(`must be an integer ${min}…${max}`),
    v.integer(`must be an integer ${min}…${max}`),
    v.minValue(min, `must be an integer ${min}…${max}`),
    v.maxValue(max, `must be an integer ${min}…${max}`),
  );
}

export const Flag = v.boolean('must be true or false');

/** A chip id (64 hex digits) or an owner address. */
export type ChipOrOwner = { kind: 'chip'; chipId: Uint8Array } | { kind: 'owner'; owner: Uint8Array };
export const ChipOrOwnerSchema = v.pipe(
  v.string('must be a chip id (64 hex digits) or an owner address'),
  v.description('a chip id (64 hex digits) or an owner address (`unc1…`)'),
  v.rawTransform(({ dataset, addIssue, NEVER }): ChipOrOwner => {
    const s = dataset.value;
    if (HEX64.test(s)) return { kind: 'chip', chipId: fromHex(s, 32) };
    try {
      return { kind: 'owner', owner: decodeAddress(s) };
    } catch {
      addIssue({ message: 'must be a chip id (64 hex digits) or an owner address' });
      return NEVER;
    }
  }),
);

/**
 * The cursors of the index methods (docs/rpc.md, "Indexes"): a page's `nextCursor`, passed back.
 * Opaque to clients; checked here so a handler only ever sees one that names a real position.
 */
// Heights and epochs in cursors have at most 19 digits, so they are always below 2^64.
const CURSOR = 'must be the nextCursor of a previous page';

/** An account page's cursor, "height:index" of its last transaction. */
export const TxCursor = v.pipe(
  v.string(`${CURSOR} ("height:index")`),
  v.regex(/^\d{1,19}:\d{1,10}$/, `${CURSOR} ("height:index")`),
  v.description('the `nextCursor` of the previous page ("height:index")'),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const [h, i] = dataset.value.split(':');
    const index = Number(i);
    if (index > 0xffff_ffff) {
      addIssue({ message: `${CURSOR} ("height:index")` });
      return NEVER;
    }
    return { height: BigInt(h!), index };
  }),
);

/** A lease log's cursor, "height:txIndex:eventIndex" of its last event. */
export const LeaseEventCursor = v.pipe(
  v.string(`${CURSOR} ("height:txIndex:eventIndex")`),
  v.regex(/^\d{1,19}:\d{1,10}:\d{1,5}$/, `${CURSOR} ("height:txIndex:eventIndex")`),
  v.description('the `nextCursor` of the previous page ("height:txIndex:eventIndex")'),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const [h, t, e] = dataset.value.split(':');
    const txIndex = Number(t);
    const eventIndex = Number(e);
    if (txIndex > 0xffff_ffff || eventIndex > 0xffff) {
      addIssue({ message: `${CURSOR} ("height:txIndex:eventIndex")` });
      return NEVER;
    }
    return { height: BigInt(h!), txIndex, eventIndex };
  }),
);

/** A chip page's cursor: the id of its last chip (64 lowercase hex digits, the order of the list). */
export const ChipCursor = v.pipe(
  v.string(`${CURSOR} (a chip id)`),
  v.regex(/^[0-9a-f]{64}$/, `${CURSOR} (a chip id)`),
  v.description('the `nextCursor` of the previous page (a chip id, 64 lowercase hex digits)'),
);

/** A network-history page's cursor: an epoch number. */
export const EpochCursor = v.pipe(
  v.string(`${CURSOR} (an epoch)`),
  v.regex(/^\d{1,19}$/, `${CURSOR} (an epoch)`),
  v.description('the `nextCursor` of the previous page (an epoch number, decimal)'),
  v.transform((s) => BigInt(s)),
);
