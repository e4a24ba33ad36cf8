/**
 * The `nvidia-spdm` profile: an NVIDIA GPU's SPDM 1.1 GET_MEASUREMENTS exchange (DMTF DSP0274),
 * signed with ECDSA P-384 / SHA-384 by the GSP FMC alias key, whose certificate chains through the
 * per-GPU BROM certificate to NVIDIA's Device Identity CA.
 *
 * Messages (NVIDIA's verifier stores them concatenated, request first; multi-byte SPDM fields are
 * little-endian):
 *   request  37 B : version, 0xE0, param1 (bit 0: signature requested), param2, nonce[32], slotId
 *   response      : version, 0x60, param1, param2, numberOfBlocks, recordLength (u24),
 *                   measurement record, nonce[32], opaqueLength (u16), opaque data, signature[96]
 * The opaque data is NVIDIA's list of (type u16, size u16, value) fields; type 20 is the FWID.
 *
 * For SPDM 1.1 the signature covers the hash of L1/L2 = the GET_MEASUREMENTS request followed by
 * the MEASUREMENTS response without its signature field; no prefix or context string (those came
 * with SPDM 1.2).
 */
import { concatBytes, equalBytes, toHex } from '../bytes.js';
import { taggedHash } from '../crypto/hash.js';
import { children, type DerNode, parseDer, readOid, readString, TAG } from './der.js';
import { AttestationError, malformed } from './errors.js';
import { ATTESTED_MESSAGE_LENGTH, type AttestedStatement } from './types.js';
import {
  type Certificate,
  certificateRevocationId,
  earliestNotAfterMs,
  getExtension,
  parseCertificates,
  parseTrustedRoots,
  requireDigitalSignature,
  type SubjectPublicKeyInfo,
  subjectAltNames,
  verifyChain,
  verifySignature,
  X509_OID,
} from './x509.js';

export const SPDM_VERSION_1_1 = 0x11;
export const SPDM_GET_MEASUREMENTS = 0xe0;
export const SPDM_MEASUREMENTS = 0x60;
const NONCE_LENGTH = 32;
const REQUEST_LENGTH = 4 + NONCE_LENGTH + 1;
/** ECDSA P-384 raw r ‖ s. */
export const SPDM_SIGNATURE_LENGTH = 96;
/** DSP0274 1.1 caps opaque data at 1024 bytes. */
const MAX_OPAQUE_LENGTH = 1024;

/** NVIDIA opaque data field types (nvtrust local GPU verifier). */
export const NVIDIA_OPAQUE = {
  DRIVER_VERSION: 3,
  GPU_INFO: 4,
  VBIOS_VERSION: 6,
  CHIP_SKU: 15,
  PROJECT: 17,
  PROJECT_SKU: 18,
  FWID: 20,
} as const;

/** GSP FMC leaf, BROM (per GPU), provisioner ICA, GH100 identity CA, Device Identity CA root. */
export const NVIDIA_CHAIN_LENGTH = 5;
/** The SAN otherName of the leaf: "NVIDIA:<model>:<device id>". */
export const NVIDIA_SAN_OID = '1.3.6.1.4.1.412.274.1';

export interface SpdmMeasurementBlock {
  readonly index: number;
  readonly valueType: number;
  readonly value: Uint8Array;
}

export interface SpdmMeasurementsReport {
  readonly version: number;
  readonly requesterNonce: Uint8Array;
  readonly slotId: number;
  readonly blocks: readonly SpdmMeasurementBlock[];
  readonly responderNonce: Uint8Array;
  readonly opaque: ReadonlyMap<number, Uint8Array>;
  readonly signature: Uint8Array;
  /** request ‖ response without the signature: what the signature covers. */
  readonly signed: Uint8Array;
}

class LeReader {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}
  take(n: number, field: string): Uint8Array {
    if (this.pos + n > this.buf.length) throw malformed(`${this.what}: truncated at ${field}`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u8(field: string): number {
    return this.take(1, field)[0]!;
  }
  u16(field: string): number {
    const b = this.take(2, field);
    return b[0]! | (b[1]! << 8);
  }
  u24(field: string): number {
    const b = this.take(3, field);
    return b[0]! | (b[1]! << 8) | (b[2]! << 16);
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
}

function parseMeasurementRecord(record: Uint8Array, count: number): SpdmMeasurementBlock[] {
  const r = new LeReader(record, 'SPDM measurement record');
  const blocks: SpdmMeasurementBlock[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const index = r.u8('block index');
    const spec = r.u8('measurement specification');
    // Bit 0 is DMTF, the only measurement format defined.
    if (spec !== 1) throw malformed(`SPDM: measurement block ${index} is not in DMTF format`);
    const size = r.u16('measurement size');
    const m = new LeReader(r.take(size, 'measurement'), `SPDM measurement ${index}`);
    const valueType = m.u8('DMTF value type');
    const valueSize = m.u16('DMTF value size');
    const value = m.take(valueSize, 'DMTF value');
    if (m.remaining !== 0)
      throw malformed(`SPDM: measurement block ${index} size disagrees with its value size`);
    if (seen.has(index)) throw malformed(`SPDM: measurement index ${index} appears twice`);
    seen.add(index);
    blocks.push({ index, valueType, value });
  }
  if (r.remaining !== 0) throw malformed('SPDM: measurement record longer than its blocks');
  return blocks;
}

function parseOpaque(opaque: Uint8Array): Map<number, Uint8Array> {
  const r = new LeReader(opaque, 'SPDM opaque data');
  const fields = new Map<number, Uint8Array>();
  while (r.remaining > 0) {
    const type = r.u16('field type');
    const size = r.u16('field size');
    const value = r.take(size, `field ${type}`);
    // One value per type, so that "the FWID of the report" means exactly one thing.
    if (fields.has(type)) throw malformed(`SPDM: opaque field ${type} appears twice`);
    fields.set(type, value);
  }
  return fields;
}

/** Splits NVIDIA's stored report (request ‖ response) into its two SPDM messages. */
export function splitSpdmReport(report: Uint8Array): { request: Uint8Array; response: Uint8Array } {
  if (report.length <= REQUEST_LENGTH) throw malformed('SPDM report shorter than a GET_MEASUREMENTS request');
  return { request: report.subarray(0, REQUEST_LENGTH), response: report.subarray(REQUEST_LENGTH) };
}

/** Parses a GET_MEASUREMENTS request and its signed MEASUREMENTS response (SPDM 1.1). */
export function parseSpdmMeasurements(request: Uint8Array, response: Uint8Array): SpdmMeasurementsReport {
  if (!(request instanceof Uint8Array) || !(response instanceof Uint8Array))
    throw malformed('SPDM messages are not bytes');
  const q = new LeReader(request, 'SPDM request');
  const version = q.u8('request version');
  if (version !== SPDM_VERSION_1_1)
    throw malformed(`SPDM: request version 0x${version.toString(16)}, expected 1.1`);
  if (q.u8('request code') !== SPDM_GET_MEASUREMENTS)
    throw malformed('SPDM: request is not GET_MEASUREMENTS');
  const param1 = q.u8('request param1');
  if ((param1 & 1) === 0) throw malformed('SPDM: the request did not ask for a signature');
  q.u8('request param2');
  const requesterNonce = q.take(NONCE_LENGTH, 'requester nonce');
  const slotId = q.u8('slot id') & 0x0f;
  if (q.remaining !== 0) throw malformed(`SPDM: ${q.remaining} bytes after the request`);

  const r = new LeReader(response, 'SPDM response');
  if (r.u8('response version') !== version)
    throw malformed('SPDM: response version differs from the request');
  if (r.u8('response code') !== SPDM_MEASUREMENTS) throw malformed('SPDM: response is not MEASUREMENTS');
  r.u8('response param1');
  r.u8('response param2');
  const numberOfBlocks = r.u8('number of blocks');
  const recordLength = r.u24('measurement record length');
  const blocks = parseMeasurementRecord(r.take(recordLength, 'measurement record'), numberOfBlocks);
  const responderNonce = r.take(NONCE_LENGTH, 'responder nonce');
  const opaqueLength = r.u16('opaque length');
  if (opaqueLength > MAX_OPAQUE_LENGTH) throw malformed(`SPDM: opaque data of ${opaqueLength} bytes`);
  const opaque = parseOpaque(r.take(opaqueLength, 'opaque data'));
  const signedLength = r.pos;
  const signature = r.take(SPDM_SIGNATURE_LENGTH, 'signature');
  if (r.remaining !== 0) throw malformed(`SPDM: ${r.remaining} bytes after the signature`);
  return {
    version,
    requesterNonce,
    slotId,
    blocks,
    responderNonce,
    opaque,
    signature,
    signed: concatBytes(request, response.subarray(0, signedLength)),
  };
}

/**
 * Checks an SPDM measurement exchange against a known signing key (the leaf's SubjectPublicKeyInfo)
 * and the expected message: the part of verifyNvidiaSpdm that needs no certificates, for callers
 * that already trust the key (heartbeats of a registered GPU).
 */
export function verifySpdmMeasurements(
  request: Uint8Array,
  response: Uint8Array,
  signingKey: SubjectPublicKeyInfo,
  expectedMessage: Uint8Array,
): SpdmMeasurementsReport {
  if (expectedMessage.length !== ATTESTED_MESSAGE_LENGTH)
    throw malformed('expected message must be 32 bytes');
  const report = parseSpdmMeasurements(request, response);
  if (signingKey.key.kind !== 'ec' || signingKey.key.curve !== 'P-384')
    throw malformed('the SPDM signing key must be P-384');
  if (
    !verifySignature(signingKey, { kind: 'ecdsa', hash: 'sha384' }, report.signed, report.signature, 'raw')
  ) {
    throw new AttestationError(
      'ATTEST_BAD_SIGNATURE',
      'the SPDM measurement signature does not verify with the leaf key',
    );
  }
  if (!equalBytes(report.requesterNonce, expectedMessage)) {
    throw new AttestationError(
      'ATTEST_WRONG_NONCE',
      `SPDM requester nonce ${toHex(report.requesterNonce)} is not the expected message ${toHex(expectedMessage)}`,
    );
  }
  return report;
}

const FWID_HASHES: Record<string, number> = {
  [X509_OID.sha256]: 32,
  [X509_OID.sha384]: 48,
  [X509_OID.sha512]: 64,
};

/**
 * Every FWID (SEQUENCE { hashAlg X509_OID, digest OCTET STRING }) inside a TcbInfo extension. Both the
 * TCG DiceTcbInfo layout (fwids [6]) and the compact form NVIDIA's FMC certificates use put FWIDs
 * in this shape, so they are found structurally rather than by position.
 */
export function tcbInfoFwids(cert: Certificate): { hash: string; digest: Uint8Array }[] {
  const ext = getExtension(cert, X509_OID.diceTcbInfo);
  if (!ext) return [];
  const out: { hash: string; digest: Uint8Array }[] = [];
  const walk = (node: DerNode, depth: number): void => {
    if (!node.constructed || depth > 8) return;
    const items = children(node);
    if (
      node.tag === TAG.SEQUENCE &&
      items.length === 2 &&
      items[0]!.tag === TAG.OID &&
      items[1]!.tag === TAG.OCTET_STRING
    ) {
      const hash = readOid(items[0], 'FWID hash');
      const size = FWID_HASHES[hash];
      if (size !== undefined && items[1]!.content.length === size)
        out.push({ hash, digest: items[1]!.content });
      return;
    }
    for (const item of items) walk(item, depth + 1);
  };
  walk(parseDer(ext.value), 0);
  return out;
}

/** "GH100" from the leaf's "NVIDIA:GH100:<id>" SAN, plus the device id that follows. */
export function nvidiaModel(leaf: Certificate): { model: string; deviceId: string } | null {
  for (const n of subjectAltNames(leaf)) {
    if (n.kind !== 'otherName' || n.typeId !== NVIDIA_SAN_OID) continue;
    const parts = readString(n.value, 'NVIDIA device SAN').split(':');
    if (parts.length === 3 && parts[0] === 'NVIDIA' && /^[A-Za-z0-9_-]{1,32}$/.test(parts[1]!)) {
      return { model: parts[1]!, deviceId: parts[2]! };
    }
  }
  return null;
}

/**
 * One board-identity field of the signed opaque data (PROJECT, PROJECT_SKU, CHIP_SKU: NUL-padded
 * ASCII, e.g. "1010\0"), or null when it is absent or not 1..8 letters and digits then NULs only
 * (with a die name of at most 32, the model id then fits the registry's 64 characters).
 */
function skuField(bytes: Uint8Array | undefined): string | null {
  if (!bytes) return null;
  const end = bytes.indexOf(0);
  const text = bytes.subarray(0, end < 0 ? bytes.length : end);
  if (end >= 0 && !bytes.subarray(end).every((b) => b === 0)) return null;
  const s = String.fromCharCode(...text);
  return /^[A-Za-z0-9]{1,8}$/.test(s) ? s : null;
}

/**
 * The chain's model id of a GPU: the die the leaf names (its SAN, "GH100") and the board the signed
 * report names (PROJECT, PROJECT_SKU, CHIP_SKU: the three fields NVIDIA's own verifier reads to
 * find a board's reference values), lowercase, e.g. "gh100-1010-0200-882". The die alone does not
 * say the compute: every board built on one die (an H100 SXM5, an H100 PCIe, a cut-down export
 * SKU) names the same "GH100", and rated power is per model (CONSENSUS CHANGE, audit finding C1).
 * Lowercase because model ids are (registry checkId): the die's "GH100" could never name one.
 * Null when the report names no board.
 */
export function nvidiaModelId(chip: string, opaque: ReadonlyMap<number, Uint8Array>): string | null {
  const project = skuField(opaque.get(NVIDIA_OPAQUE.PROJECT));
  const projectSku = skuField(opaque.get(NVIDIA_OPAQUE.PROJECT_SKU));
  const chipSku = skuField(opaque.get(NVIDIA_OPAQUE.CHIP_SKU));
  if (project === null || projectSku === null || chipSku === null) return null;
  return `${chip}-${project}-${projectSku}-${chipSku}`.toLowerCase();
}

/** A NUL-padded ASCII field (driver version), or its hex when it is not printable ASCII. */
function asciiField(bytes: Uint8Array | undefined): string {
  if (!bytes) return '';
  const end = bytes.indexOf(0);
  const text = bytes.subarray(0, end < 0 ? bytes.length : end);
  return text.every((b) => b >= 0x20 && b < 0x7f) ? String.fromCharCode(...text) : toHex(bytes);
}

export interface NvidiaSpdmInput {
  /** The GET_MEASUREMENTS request (37 bytes for SPDM 1.1 with a signature requested). */
  readonly request: Uint8Array;
  /** The signed MEASUREMENTS response. */
  readonly response: Uint8Array;
  /** DER device certificates, leaf (GSP FMC) first; the root may be included. */
  readonly chain: readonly Uint8Array[];
  /** DER roots (NVIDIA Device Identity CA). */
  readonly roots: readonly Uint8Array[];
  readonly revokedSerials: ReadonlySet<string>;
  readonly atMs: bigint;
  readonly expectedMessage: Uint8Array;
  readonly vendorId?: string;
}

/**
 * Verifies nvidia-spdm evidence: the messages parse, the signature verifies with the leaf key, the
 * requester nonce is the expected message, the device chain reaches a root at block time (five
 * certificates, linked by key ids and signatures), and the report's FWID is one the leaf's TcbInfo
 * vouches for. The chip id is the per-GPU BROM certificate's serial number; the model id names the
 * die and the board (nvidiaModelId).
 */
export function verifyNvidiaSpdm(input: NvidiaSpdmInput): AttestedStatement {
  if (input.chain.length === 0) throw malformed('empty device certificate chain');
  const leaf = parseCertificates(input.chain.slice(0, 1), 'device certificate')[0]!;
  requireDigitalSignature(leaf);
  // The evidence signature first: it is one verification, and junk should not cost a whole chain.
  const report = verifySpdmMeasurements(input.request, input.response, leaf.publicKey, input.expectedMessage);
  const certs = [leaf, ...parseCertificates(input.chain.slice(1), 'device certificate')];
  const roots = parseTrustedRoots(input.roots);
  const { path, anchor } = verifyChain(certs, roots, input.atMs, input.revokedSerials);
  if (path.length !== NVIDIA_CHAIN_LENGTH) {
    throw malformed(`the device chain has ${path.length} certificates, expected ${NVIDIA_CHAIN_LENGTH}`);
  }
  const fwid = report.opaque.get(NVIDIA_OPAQUE.FWID);
  if (!fwid) throw new AttestationError('ATTEST_FWID_MISMATCH', 'the report carries no FWID');
  const vouched = tcbInfoFwids(leaf);
  if (vouched.length === 0)
    throw new AttestationError('ATTEST_FWID_MISMATCH', 'the leaf certificate carries no TcbInfo FWID');
  if (!vouched.some((f) => equalBytes(f.digest, fwid))) {
    throw new AttestationError(
      'ATTEST_FWID_MISMATCH',
      `report FWID ${toHex(fwid)} is not the one the leaf certificate vouches for`,
    );
  }
  const model = nvidiaModel(leaf);
  if (!model)
    throw new AttestationError('ATTEST_UNKNOWN_MODEL', 'the leaf certificate names no NVIDIA model');
  const modelId = nvidiaModelId(model.model, report.opaque);
  if (modelId === null)
    throw new AttestationError(
      'ATTEST_UNKNOWN_MODEL',
      'the report names no board (opaque PROJECT, PROJECT_SKU and CHIP_SKU, letters and digits)',
    );
  const brom = path[1]!;
  return {
    profile: 'nvidia-spdm',
    chipId: taggedHash('UNC/chip-id/nvidia-spdm', brom.serial),
    vendorId: input.vendorId ?? '',
    modelId,
    message: new Uint8Array(input.expectedMessage),
    details: {
      spdmVersion: '1.1',
      chip: model.model,
      fwid: toHex(fwid),
      bromSerial: brom.serialHex,
      leafSerial: leaf.serialHex,
      // Revocation ids (issuer-scoped serials, certificateRevocationId), under the stable old name.
      certSerials: path.map(certificateRevocationId).join(','),
      // The end of the path's validity (the earliest notAfter): the chip record keeps it (audchip C2).
      certsNotAfterMs: earliestNotAfterMs(path),
      signingKey: toHex(leaf.publicKey.der),
      deviceId: model.deviceId,
      measurementBlocks: report.blocks.length,
      responderNonce: toHex(report.responderNonce),
      driverVersion: asciiField(report.opaque.get(NVIDIA_OPAQUE.DRIVER_VERSION)),
      vbiosVersion: toHex(report.opaque.get(NVIDIA_OPAQUE.VBIOS_VERSION) ?? new Uint8Array()),
      rootSubject: anchor.subject.text,
    },
  };
}
