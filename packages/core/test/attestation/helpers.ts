/**
 * Test-only builders: a small DER writer and a certificate factory signed with node:crypto keys, so
 * tests can make the certificates no real vendor would issue (non-CA issuers, unknown critical
 * extensions, high-S signatures, chains of any shape) and check that verification refuses them.
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { splitSpdmReport } from '../../src/attestation/nvidia-spdm.js';
import { pemToDer } from '../../src/attestation/x509.js';
import { concatBytes, fromHex, utf8 } from '../../src/bytes.js';

export const FIXTURES = new URL('../../../test/attestation/fixtures/', import.meta.url);
export const NVIDIA_DIR = new URL('nvidia-h100/', FIXTURES);

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(name, FIXTURES)));
}

export function tpmFixture(name: string): Uint8Array {
  return fixture(`tpm/${name}`);
}

export const TPM_MESSAGE = fromHex(readFileSync(new URL('tpm/message.hex', FIXTURES), 'utf8').trim(), 32);

/** Block time in ms of an ISO date. */
export function ms(iso: string): bigint {
  return BigInt(Date.parse(iso));
}

function lengthBytes(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Uint8Array.of(0x80 | out.length, ...out);
}

export function tlv(tag: number, content: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(tag), lengthBytes(content.length), content);
}

function bigintBytes(v: bigint): Uint8Array {
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = fromHex(hex);
  if (b[0]! & 0x80) b = concatBytes(Uint8Array.of(0), b);
  return b;
}

export const der = {
  seq: (...items: Uint8Array[]) => tlv(0x30, concatBytes(...items)),
  set: (...items: Uint8Array[]) => tlv(0x31, concatBytes(...items)),
  int: (v: bigint | number) => tlv(0x02, bigintBytes(BigInt(v))),
  /** An INTEGER from a big-endian magnitude (adds the sign byte when needed). */
  uint: (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const m = b.subarray(i);
    return tlv(0x02, m[0]! & 0x80 ? concatBytes(Uint8Array.of(0), m) : m);
  },
  bool: (v: boolean) => tlv(0x01, Uint8Array.of(v ? 0xff : 0)),
  nul: () => tlv(0x05, new Uint8Array()),
  octet: (b: Uint8Array) => tlv(0x04, b),
  bit: (b: Uint8Array, unused = 0) => tlv(0x03, concatBytes(Uint8Array.of(unused), b)),
  utf8: (s: string) => tlv(0x0c, utf8(s)),
  printable: (s: string) => tlv(0x13, utf8(s)),
  oid: (dotted: string) => {
    const arcs = dotted.split('.').map((a) => BigInt(a));
    const out: number[] = [];
    const push = (v: bigint) => {
      const bytes: number[] = [Number(v & 0x7fn)];
      for (let x = v >> 7n; x > 0n; x >>= 7n) bytes.unshift(Number(x & 0x7fn) | 0x80);
      out.push(...bytes);
    };
    push(arcs[0]! * 40n + arcs[1]!);
    for (const a of arcs.slice(2)) push(a);
    return tlv(0x06, Uint8Array.from(out));
  },
  /** UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5). */
  time: (iso: string) => {
    const d = new Date(iso);
    const p = (n: number, w = 2) => String(n).padStart(w, '0');
    const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
    const y = d.getUTCFullYear();
    return y >= 1950 && y < 2050
      ? tlv(0x17, utf8(`${p(y % 100)}${rest}`))
      : tlv(0x18, utf8(`${p(y, 4)}${rest}`));
  },
  ctx: (n: number, constructed: boolean, content: Uint8Array) =>
    tlv(0x80 | (constructed ? 0x20 : 0) | n, content),
};

export function name(cn: string, extra: [string, string][] = []): Uint8Array {
  return der.seq(
    der.set(der.seq(der.oid('2.5.4.3'), der.utf8(cn))),
    ...extra.map(([oid, v]) => der.set(der.seq(der.oid(oid), der.utf8(v)))),
  );
}

export interface BuiltExtension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

export const ext = {
  ski: (id: Uint8Array): BuiltExtension => ({ oid: '2.5.29.14', critical: false, value: der.octet(id) }),
  aki: (id: Uint8Array): BuiltExtension => ({
    oid: '2.5.29.35',
    critical: false,
    value: der.seq(der.ctx(0, false, id)),
  }),
  ca: (pathLen?: number): BuiltExtension => ({
    oid: '2.5.29.19',
    critical: true,
    value: der.seq(der.bool(true), ...(pathLen === undefined ? [] : [der.int(pathLen)])),
  }),
  /** keyUsage with the given bit numbers set (0 digitalSignature, 5 keyCertSign, 6 cRLSign). */
  ku: (...bits: number[]): BuiltExtension => {
    let v = 0;
    for (const b of bits) v |= 0x80 >> b;
    let unused = 0;
    while (unused < 7 && !(v & (1 << unused))) unused++;
    return { oid: '2.5.29.15', critical: true, value: der.bit(Uint8Array.of(v), unused) };
  },
  raw: (oid: string, critical: boolean, value: Uint8Array): BuiltExtension => ({ oid, critical, value }),
};

export type SigAlg = 'ecdsa-sha256' | 'ecdsa-sha384' | 'rsa-sha256' | 'rsa-pss-sha256';

const SIG_ALG_DER: Record<SigAlg, () => Uint8Array> = {
  'ecdsa-sha256': () => der.seq(der.oid('1.2.840.10045.4.3.2')),
  'ecdsa-sha384': () => der.seq(der.oid('1.2.840.10045.4.3.3')),
  'rsa-sha256': () => der.seq(der.oid('1.2.840.113549.1.1.11'), der.nul()),
  'rsa-pss-sha256': () => {
    const sha256 = der.seq(der.oid('2.16.840.1.101.3.4.2.1'));
    return der.seq(
      der.oid('1.2.840.113549.1.1.10'),
      der.seq(
        der.ctx(0, true, sha256),
        der.ctx(1, true, der.seq(der.oid('1.2.840.113549.1.1.8'), sha256)),
        der.ctx(2, true, der.int(32)),
      ),
    );
  },
};

const CURVE_ORDER: Record<string, bigint> = {
  'P-256': 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  'P-384':
    0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
};

export function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`);
}

export function bigIntToBytes(v: bigint, size: number): Uint8Array {
  return fromHex(v.toString(16).padStart(size * 2, '0'), size);
}

/** n − s: the other valid ECDSA signature for the same (r, message, key). */
export function flipS(curve: 'P-256' | 'P-384', rawSig: Uint8Array): Uint8Array {
  const half = rawSig.length / 2;
  const s = bytesToBigInt(rawSig.subarray(half));
  return concatBytes(rawSig.subarray(0, half), bigIntToBytes(CURVE_ORDER[curve]! - s, half));
}

export function isHighS(curve: 'P-256' | 'P-384', s: Uint8Array): boolean {
  return bytesToBigInt(s) > CURVE_ORDER[curve]! / 2n;
}

export function curveOf(key: KeyObject): 'P-256' | 'P-384' {
  const c = key.asymmetricKeyDetails?.namedCurve;
  if (c === 'prime256v1') return 'P-256';
  if (c === 'secp384r1') return 'P-384';
  throw new Error(`unexpected curve ${c}`);
}

/** Signs `data` as a certificate signature of `alg`; `sMode` forces a high- or low-S ECDSA value. */
export function signAs(alg: SigAlg, key: KeyObject, data: Uint8Array, sMode?: 'high' | 'low'): Uint8Array {
  if (alg === 'rsa-sha256') return new Uint8Array(sign('sha256', data, key));
  if (alg === 'rsa-pss-sha256') {
    return new Uint8Array(
      sign('sha256', data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }),
    );
  }
  const curve = curveOf(key);
  let raw: Uint8Array = new Uint8Array(
    sign(alg === 'ecdsa-sha256' ? 'sha256' : 'sha384', data, { key, dsaEncoding: 'ieee-p1363' }),
  );
  const half = raw.length / 2;
  if (sMode && isHighS(curve, raw.subarray(half)) !== (sMode === 'high')) raw = flipS(curve, raw);
  return der.seq(der.uint(raw.subarray(0, half)), der.uint(raw.subarray(half)));
}

export interface Issued {
  der: Uint8Array;
  key: KeyObject;
  spki: Uint8Array;
  ski: Uint8Array;
  name: Uint8Array;
}

export interface CertOptions {
  subject: Uint8Array;
  issuer?: Issued;
  serial?: bigint;
  notBefore?: string;
  notAfter?: string;
  keyAlg?: 'P-256' | 'P-384' | 'rsa2048';
  /** Use this key pair instead of generating one. */
  keyPair?: { publicKey: KeyObject; privateKey: KeyObject };
  sigAlg?: SigAlg;
  extensions?: (self: { ski: Uint8Array }) => BuiltExtension[];
  sMode?: 'high' | 'low';
}

let serialCounter = 0x5000n;

/** Issues a v3 certificate (self-signed when `issuer` is absent). */
export function issue(opts: CertOptions): Issued {
  const keyAlg = opts.keyAlg ?? 'P-384';
  const pair =
    opts.keyPair ??
    (keyAlg === 'rsa2048'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: keyAlg }));
  const spki = new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' }));
  const ski = new Uint8Array(20);
  ski.set(spki.subarray(spki.length - 20));
  const signerKey = opts.issuer?.key ?? pair.privateKey;
  const sigAlg =
    opts.sigAlg ??
    (signerKey.asymmetricKeyType === 'rsa'
      ? 'rsa-sha256'
      : curveOf(signerKey) === 'P-256'
        ? 'ecdsa-sha256'
        : 'ecdsa-sha384');
  const extensions = opts.extensions
    ? opts.extensions({ ski })
    : [ext.ski(ski), ...(opts.issuer ? [ext.aki(opts.issuer.ski)] : [])];
  const algDer = SIG_ALG_DER[sigAlg]();
  const tbs = der.seq(
    der.ctx(0, true, der.int(2)),
    der.int(opts.serial ?? serialCounter++),
    algDer,
    opts.issuer?.name ?? opts.subject,
    der.seq(
      der.time(opts.notBefore ?? '2026-01-01T00:00:00Z'),
      der.time(opts.notAfter ?? '2036-01-01T00:00:00Z'),
    ),
    opts.subject,
    spki,
    ...(extensions.length
      ? [
          der.ctx(
            3,
            true,
            der.seq(
              ...extensions.map((e) =>
                der.seq(der.oid(e.oid), ...(e.critical ? [der.bool(true)] : []), der.octet(e.value)),
              ),
            ),
          ),
        ]
      : []),
  );
  const sig = signAs(sigAlg, signerKey, tbs, opts.sMode);
  return { der: der.seq(tbs, algDer, der.bit(sig)), key: pair.privateKey, spki, ski, name: opts.subject };
}

/** A CA certificate with the usual extensions. */
export function issueCa(cn: string, issuer?: Issued, more: Partial<CertOptions> = {}): Issued {
  return issue({
    subject: name(cn),
    ...(issuer ? { issuer } : {}),
    extensions: ({ ski }) => [ext.ca(), ext.ku(5, 6), ext.ski(ski), ...(issuer ? [ext.aki(issuer.ski)] : [])],
    ...more,
  });
}

/** NVIDIA's published H100 sample (see fixtures/nvidia-h100/README.md). */
export function nvidiaSample(): {
  report: Uint8Array;
  request: Uint8Array;
  response: Uint8Array;
  chain: Uint8Array[];
  roots: Uint8Array[];
  nonce: Uint8Array;
} {
  const report = fromHex(readFileSync(new URL('report.hex', NVIDIA_DIR), 'utf8').trim());
  const chain = pemToDer(readFileSync(new URL('chain.pem', NVIDIA_DIR), 'utf8'));
  const roots = pemToDer(readFileSync(new URL('device_root.pem', NVIDIA_DIR), 'utf8'));
  const { request, response } = splitSpdmReport(report);
  return { report, request, response, chain, roots, nonce: request.slice(4, 36) };
}

/** Inside every certificate of the NVIDIA sample (the latest notBefore is 2022-03-01). */
export const NVIDIA_AT = ms('2025-06-01T00:00:00Z');
/** Inside the TPM fixtures' window 2026-01-01 .. 2036-01-01. */
export const TPM_AT = ms('2030-06-01T00:00:00Z');
