/**
 * The attestation verifier's signature checks (x509.ts verifySignature: certificate chains, the
 * NVIDIA SPDM report, the RSA allow-list; tpm2.ts verifyTpmSignature: TPM quotes) pinned by
 * Wycheproof's ECDSA P-256/SHA-256, ECDSA P-384/SHA-384 and RSA-2048 PKCS#1 v1.5/SHA-256 vectors
 * (test/vectors/wycheproof/, unmodified). Protocol choices where Wycheproof allows either answer:
 * high-S ECDSA is valid (TPMs produce it, PROTOCOL.md); an RSA DigestInfo without the NULL
 * parameters is invalid (one encoding per signature; see RSA_ACCEPTABLE).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { p256, p384 } from '@noble/curves/nist.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import {
  type HashName,
  parseSubjectPublicKeyInfo,
  type SubjectPublicKeyInfo,
  verifySignature,
  verifyTpmSignature,
} from '../../src/attestation/index.js';
import { fromHex, toHex } from '../../src/bytes.js';

const VECTORS = new URL('../../../test/vectors/wycheproof/', import.meta.url);

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface WycheproofFile {
  numberOfTests: number;
  testGroups: { publicKeyDer: string; tests: WycheproofTest[] }[];
}

function load(name: string): WycheproofFile {
  return JSON.parse(readFileSync(new URL(name, VECTORS), 'utf8')) as WycheproofFile;
}

function cases(
  file: WycheproofFile,
): { spki: SubjectPublicKeyInfo | null; keyDer: string; t: WycheproofTest }[] {
  const out = [];
  for (const g of file.testGroups) {
    let spki: SubjectPublicKeyInfo | null = null;
    try {
      spki = parseSubjectPublicKeyInfo(fromHex(g.publicKeyDer));
    } catch {
      spki = null;
    }
    for (const t of g.tests) out.push({ spki, keyDer: g.publicKeyDer, t });
  }
  assert.equal(out.length, file.numberOfTests);
  return out;
}

/** r and s of a DER ECDSA signature, only when the signature is the canonical DER of the two. */
function canonicalDerScalars(sig: Uint8Array): { r: bigint; s: bigint } | null {
  const ints: bigint[] = [];
  let i = 2;
  if (sig[0] !== 0x30 || sig.length < 8) return null;
  while (i < sig.length && ints.length < 2) {
    if (sig[i] !== 0x02) return null;
    const len = sig[i + 1]!;
    if (len >= 0x80) return null;
    ints.push(bytesToNumberBE(sig.subarray(i + 2, i + 2 + len)));
    i += 2 + len;
  }
  if (ints.length !== 2) return null;
  const [r, s] = ints as [bigint, bigint];
  return toHex(derEncode(r, s)) === toHex(sig) ? { r, s } : null;
}

function derInt(v: bigint): Uint8Array {
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  const b = fromHex(hex);
  return Uint8Array.from([0x02, b.length, ...b]);
}

function derEncode(r: bigint, s: bigint): Uint8Array {
  const body = [...derInt(r), ...derInt(s)];
  if (body.length >= 0x80) return Uint8Array.from([0x30, 0x81, body.length, ...body]);
  return Uint8Array.from([0x30, body.length, ...body]);
}

const ECDSA = [
  { file: 'ecdsa_secp256r1_sha256_test.json', hash: 'sha256' as HashName, size: 32, curve: p256 },
  { file: 'ecdsa_secp384r1_sha384_test.json', hash: 'sha384' as HashName, size: 48, curve: p384 },
];

describe('Wycheproof ECDSA against the attestation verifier', () => {
  for (const { file, hash, size, curve } of ECDSA) {
    const all = cases(load(file));
    const n = curve.Point.Fn.ORDER;

    test(`${file}: verifySignature (DER, certificates) gives Wycheproof's verdict for all ${all.length}`, () => {
      for (const { spki, t } of all) {
        assert.notEqual(t.result, 'acceptable', `tcId ${t.tcId}: pin the protocol's answer`);
        const got =
          spki !== null && verifySignature(spki, { kind: 'ecdsa', hash }, fromHex(t.msg), fromHex(t.sig));
        assert.equal(got, t.result === 'valid', `tcId ${t.tcId} (${t.comment})`);
      }
    });

    test(`${file}: the raw r ‖ s path (TPM, SPDM) agrees wherever the DER is canonical, and with noble`, () => {
      let checked = 0;
      for (const { spki, keyDer, t } of all) {
        const scalars = canonicalDerScalars(fromHex(t.sig));
        if (!spki || !scalars) continue;
        const { r, s } = scalars;
        const fits = r < 1n << BigInt(8 * size) && s < 1n << BigInt(8 * size);
        const tpm =
          fits &&
          verifyTpmSignature(spki, fromHex(t.msg), {
            sigAlg: 'ecdsa',
            hash,
            r: numberToBytesBE(r, size),
            s: numberToBytesBE(s, size),
          });
        assert.equal(tpm, t.result === 'valid', `tcId ${t.tcId} (${t.comment})`);
        // A second implementation: noble, high-S allowed, same verdict on the same (r, s).
        if (fits) {
          let noble: boolean;
          try {
            const raw = Uint8Array.from([...numberToBytesBE(r, size), ...numberToBytesBE(s, size)]);
            const point = fromHex(keyDer).subarray(-(2 * size + 1));
            noble = curve.verify(raw, fromHex(t.msg), point, { lowS: false, format: 'compact' });
          } catch {
            noble = false;
          }
          assert.equal(noble, t.result === 'valid', `noble, tcId ${t.tcId} (${t.comment})`);
        }
        checked++;
      }
      assert.ok(checked > all.length / 2, `only ${checked} vectors had canonical DER`);
    });

    test(`${file}: high-S is valid: every valid (r, s) also verifies as (r, n - s), DER and raw`, () => {
      let checked = 0;
      for (const { spki, t } of all) {
        if (t.result !== 'valid' || !spki) continue;
        const scalars = canonicalDerScalars(fromHex(t.sig));
        if (!scalars) continue;
        const twin = n - scalars.s;
        const msg = fromHex(t.msg);
        assert.equal(verifySignature(spki, { kind: 'ecdsa', hash }, msg, derEncode(scalars.r, twin)), true);
        const raw = Uint8Array.from([...numberToBytesBE(scalars.r, size), ...numberToBytesBE(twin, size)]);
        assert.equal(verifySignature(spki, { kind: 'ecdsa', hash }, msg, raw, 'raw'), true, `tcId ${t.tcId}`);
        checked++;
      }
      assert.ok(checked > 100);
    });
  }
});

/** tcIds whose Wycheproof result is "acceptable", with the protocol's answer. */
const RSA_ACCEPTABLE: Record<number, boolean> = { 8: false };

describe('Wycheproof RSA-2048 PKCS#1 v1.5 SHA-256 against the attestation verifier', () => {
  const all = cases(load('rsa_signature_2048_sha256_test.json'));

  test(`verifySignature gives Wycheproof's verdict for all ${all.length}, "acceptable" as pinned`, () => {
    for (const { spki, t } of all) {
      const expected = t.result === 'acceptable' ? RSA_ACCEPTABLE[t.tcId] : t.result === 'valid';
      assert.notEqual(expected, undefined, `tcId ${t.tcId} is acceptable: pin the protocol's answer`);
      const got =
        spki !== null &&
        verifySignature(spki, { kind: 'rsa-pkcs1', hash: 'sha256' }, fromHex(t.msg), fromHex(t.sig));
      assert.equal(got, expected, `tcId ${t.tcId} (${t.comment}) [${t.flags.join(', ')}]`);
    }
  });
});
