import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import { rejects as rejectsWith } from '@unc/test-utils';
import fc from 'fast-check';
import { AttestationError } from '../../src/attestation/errors.js';
import {
  checkTpmClockMonotonic,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtSignature,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPMA_OBJECT,
  type TpmClockState,
  tpmClockFromStatement,
  tpmPublicMatchesKey,
  verifyTpm2,
  verifyTpm2Attestation,
} from '../../src/attestation/tpm2.js';
import {
  certificateRevocationId,
  parseCertificate,
  parseSubjectPublicKeyInfo,
  publicKeyIdentity,
} from '../../src/attestation/x509.js';
import { concatBytes, toHex } from '../../src/bytes.js';
import { taggedHash } from '../../src/crypto/hash.js';
import {
  der,
  ext,
  flipS,
  isHighS,
  issue,
  issueCa,
  ms,
  name,
  nvidiaSample,
  TPM_AT,
  TPM_MESSAGE,
  tpmFixture,
} from './helpers.js';

const rejects = (fn: () => unknown, code: string, re?: RegExp) => rejectsWith(fn, AttestationError, code, re);

const root = tpmFixture('root.der');
const intEcc = tpmFixture('int-ecc.der');
const intRsa = tpmFixture('int-rsa.der');

interface Case {
  label: string;
  attest: string;
  sig: string;
  cert: string;
  chain: Uint8Array[];
  scheme: string;
}

const CASES: Case[] = [
  {
    label: 'P-256 quote',
    attest: 'quote-ecc.attest',
    sig: 'quote-ecc.sig',
    cert: 'ak-ecc-cert.der',
    chain: [intEcc],
    scheme: 'ecdsa',
  },
  {
    label: 'P-256 gettime',
    attest: 'time-ecc.attest',
    sig: 'time-ecc.sig',
    cert: 'ak-ecc-cert.der',
    chain: [intEcc],
    scheme: 'ecdsa',
  },
  {
    label: 'P-256 gettime after a reset',
    attest: 'time-ecc-reboot.attest',
    sig: 'time-ecc-reboot.sig',
    cert: 'ak-ecc-cert.der',
    chain: [intEcc],
    scheme: 'ecdsa',
  },
  {
    label: 'RSA-2048 RSASSA quote',
    attest: 'quote-rsa.attest',
    sig: 'quote-rsa.sig',
    cert: 'ak-rsa-cert.der',
    chain: [intRsa],
    scheme: 'rsassa',
  },
  {
    label: 'RSA-2048 RSAPSS quote',
    attest: 'quote-rsapss.attest',
    sig: 'quote-rsapss.sig',
    cert: 'ak-rsapss-cert.der',
    chain: [intRsa],
    scheme: 'rsapss',
  },
];

function input(
  c: Case,
  over: Partial<Parameters<typeof verifyTpm2>[0]> = {},
): Parameters<typeof verifyTpm2>[0] {
  return {
    attest: tpmFixture(c.attest),
    signature: tpmFixture(c.sig),
    akCertificate: tpmFixture(c.cert),
    chain: c.chain,
    roots: [root],
    revokedSerials: new Set(),
    atMs: TPM_AT,
    expectedMessage: TPM_MESSAGE,
    vendorId: 'test-tpm-vendor',
    ...over,
  };
}

const ecc = CASES[0]!;

describe('TPM structures (swtpm fixtures)', () => {
  test('TPMS_ATTEST of a quote and of a time attestation', () => {
    const q = parseTpmsAttest(tpmFixture('quote-ecc.attest'));
    assert.equal(q.type, 0x8018);
    assert.deepEqual(q.extraData, TPM_MESSAGE);
    assert.equal(q.attested.type, 'quote');
    assert.equal(q.attested.type === 'quote' && q.attested.pcrSelect.length, 1);
    assert.equal(q.attested.type === 'quote' && q.attested.pcrSelect[0]!.hash, TPM_ALG.SHA256);
    assert.equal(q.attested.type === 'quote' && q.attested.pcrDigest.length, 32);
    assert.equal(q.qualifiedSigner.length, 34);
    const t = parseTpmsAttest(tpmFixture('time-ecc.attest'));
    assert.equal(t.type, 0x8019);
    assert.equal(t.attested.type, 'time');
    if (t.attested.type === 'time') {
      assert.equal(t.attested.clockInfo.resetCount, t.clockInfo.resetCount);
      assert.ok(t.attested.time > 0n);
      assert.equal(t.attested.firmwareVersion, t.firmwareVersion);
    }
    assert.equal(t.clockInfo.safe, true);
    // The same AK signed both, so the qualified signer is the same.
    assert.deepEqual(t.qualifiedSigner, q.qualifiedSigner);
  });

  test('TPMT_SIGNATURE in the three schemes tpm2-tools writes by default', () => {
    const e = parseTpmtSignature(tpmFixture('quote-ecc.sig'));
    assert.equal(e.sigAlg, 'ecdsa');
    assert.equal(e.hash, 'sha256');
    assert.equal(e.sigAlg === 'ecdsa' && e.r.length, 32);
    assert.equal(parseTpmtSignature(tpmFixture('quote-rsa.sig')).sigAlg, 'rsassa');
    const pss = parseTpmtSignature(tpmFixture('quote-rsapss.sig'));
    assert.ok(pss.sigAlg !== 'ecdsa');
    assert.equal(pss.signature.length, 256);
    assert.equal(pss.sigAlg, 'rsapss');
  });

  test('TPM2B_PUBLIC of the AKs matches the keys in their certificates', () => {
    for (const [pub, cert] of [
      ['ak-ecc.tpm2b', 'ak-ecc-cert.der'],
      ['ak-rsa.tpm2b', 'ak-rsa-cert.der'],
      ['ak-rsapss.tpm2b', 'ak-rsapss-cert.der'],
    ] as const) {
      const p = parseTpm2bPublic(tpmFixture(pub));
      const attrs =
        TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;
      assert.equal(p.objectAttributes & attrs, attrs, 'a restricted, non-duplicable signing key');
      assert.equal(p.name.length, 34);
      assert.ok(tpmPublicMatchesKey(p, parseCertificate(tpmFixture(cert)).publicKey.key), pub);
      assert.ok(!tpmPublicMatchesKey(p, parseCertificate(root).publicKey.key));
    }
    const e = parseTpm2bPublic(tpmFixture('ak-ecc.tpm2b'));
    assert.equal(e.type === 'ecc' && e.curve, 'P-256');
    assert.deepEqual(e.scheme, { alg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256 });
    const r = parseTpm2bPublic(tpmFixture('ak-rsa.tpm2b'));
    assert.equal(r.type === 'rsa' && r.keyBits, 2048);
  });

  test('refuses structures that are not exactly what the TPM produces', () => {
    const attest = tpmFixture('quote-ecc.attest');
    rejects(() => parseTpmsAttest(concatBytes(attest, Uint8Array.of(0))), 'ATTEST_MALFORMED', /trailing/);
    rejects(() => parseTpmsAttest(attest.subarray(0, attest.length - 1)), 'ATTEST_MALFORMED', /truncated/);
    const badMagic = Uint8Array.from(attest);
    badMagic[3]! ^= 1;
    rejects(() => parseTpmsAttest(badMagic), 'ATTEST_MALFORMED', /magic/);
    const certify = Uint8Array.from(attest);
    certify[5] = 0x17; // TPM_ST_ATTEST_CERTIFY
    rejects(() => parseTpmsAttest(certify), 'ATTEST_MALFORMED', /neither a quote/);
    const sig = tpmFixture('quote-ecc.sig');
    const sha1 = Uint8Array.from(sig);
    sha1[3] = TPM_ALG.SHA1;
    rejects(() => parseTpmtSignature(sha1), 'ATTEST_MALFORMED', /hash algorithm/);
    const hmac = Uint8Array.from(sig);
    hmac[1] = 0x05;
    rejects(() => parseTpmtSignature(hmac), 'ATTEST_MALFORMED', /not supported/);
    rejects(() => parseTpmtSignature(concatBytes(sig, Uint8Array.of(0))), 'ATTEST_MALFORMED', /trailing/);
  });
});

describe('verifyTpm2', () => {
  for (const c of CASES) {
    test(`accepts the ${c.label}`, () => {
      const s = verifyTpm2(input(c));
      assert.equal(s.profile, 'tpm2');
      assert.equal(s.vendorId, 'test-tpm-vendor');
      assert.equal(s.modelId, 'UNC-TPU-1');
      assert.deepEqual(s.message, TPM_MESSAGE);
      assert.equal(s.chipId.length, 32);
      assert.equal(s.details.signingKey, toHex(parseCertificate(tpmFixture(c.cert)).publicKey.der));
      const attest = parseTpmsAttest(tpmFixture(c.attest));
      assert.equal(s.details.clock, attest.clockInfo.clock);
      assert.equal(s.details.resetCount, attest.clockInfo.resetCount);
      assert.equal(s.details.restartCount, attest.clockInfo.restartCount);
      assert.equal(s.details.attestType, attest.attested.type);
    });
  }

  test('an AK certificate with extendedKeyUsage must name tcg-kp-AIKCertificate; a vendor can require it', () => {
    const akKey = createPublicKey({
      key: Buffer.from(parseCertificate(tpmFixture(ecc.cert)).publicKey.der),
      format: 'der',
      type: 'spki',
    });
    const ca = issueCa('EKU test root');
    const akCert = (purposes: string[] | null) =>
      issue({
        subject: name('EKU test AK', [['2.23.133.2.2', 'UNC-TPU-1']]),
        issuer: ca,
        keyPair: { publicKey: akKey, privateKey: ca.key },
        extensions: ({ ski }) => [
          ext.ku(0),
          ext.ski(ski),
          ext.aki(ca.ski),
          ...(purposes ? [ext.raw('2.5.29.37', false, der.seq(...purposes.map((p) => der.oid(p))))] : []),
        ],
      }).der;
    const run = (cert: Uint8Array, requireAkEku = false) =>
      verifyTpm2(input(ecc, { akCertificate: cert, chain: [], roots: [ca.der], requireAkEku }));
    const AK_PURPOSE = '2.23.133.8.3';
    const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
    assert.equal(run(akCert([AK_PURPOSE]), true).profile, 'tpm2');
    assert.equal(run(akCert([SERVER_AUTH, AK_PURPOSE])).profile, 'tpm2');
    rejects(() => run(akCert([SERVER_AUTH])), 'ATTEST_KEY_USAGE', /not 2\.23\.133\.8\.3/);
    assert.equal(run(akCert(null)).profile, 'tpm2', 'absent: fine unless the vendor requires it');
    rejects(() => run(akCert(null), true), 'ATTEST_KEY_USAGE', /requires purpose/);
    rejects(() => run(akCert([])), 'ATTEST_MALFORMED');
  });

  test('a vendor that requires a HardwareModuleName refuses an AK certificate without one', () => {
    assert.equal(
      verifyTpm2(input(CASES[0]!, { requireHardwareModuleName: true })).details.identity,
      'hardwareModuleName',
    );
    rejects(
      () => verifyTpm2(input(CASES[3]!, { requireHardwareModuleName: true })),
      'ATTEST_IDENTITY_REQUIRED',
    );
    assert.equal(verifyTpm2(input(CASES[3]!)).details.identity, 'akPublicKey');
  });

  test('derives the chip id from the HardwareModuleName when the AK certificate has one, else from the AK key', () => {
    const hmn = verifyTpm2(input(CASES[0]!));
    assert.equal(hmn.details.identity, 'hardwareModuleName');
    assert.equal(hmn.details.hwSerialNum, '0123456789abcdef');
    // Quote and time attestation of the same TPM are the same chip, before and after a reset.
    assert.deepEqual(verifyTpm2(input(CASES[1]!)).chipId, hmn.chipId);
    assert.deepEqual(verifyTpm2(input(CASES[2]!)).chipId, hmn.chipId);
    const rsa = verifyTpm2(input(CASES[3]!));
    assert.equal(rsa.details.identity, 'akPublicKey');
    const key = parseCertificate(tpmFixture('ak-rsa-cert.der')).publicKey.key;
    assert.deepEqual(rsa.chipId, taggedHash('UNC/chip-id/tpm2', Uint8Array.of(2), publicKeyIdentity(key)));
    assert.notDeepEqual(rsa.chipId, verifyTpm2(input(CASES[4]!)).chipId);
  });

  test('accepts the TPM-produced high-S signature and its low-S twin', () => {
    const sig = parseTpmtSignature(tpmFixture('quote-ecc.sig'));
    assert.ok(
      sig.sigAlg === 'ecdsa' && isHighS('P-256', sig.s),
      'the committed fixture is high-S (see make-tpm-fixtures.sh)',
    );
    const raw = tpmFixture('quote-ecc.sig');
    const rs = concatBytes(raw.subarray(6, 38), raw.subarray(40, 72));
    const low = flipS('P-256', rs);
    const lowSig = concatBytes(raw.subarray(0, 40), low.subarray(32));
    const p = parseTpmtSignature(lowSig);
    assert.ok(p.sigAlg === 'ecdsa' && !isHighS('P-256', p.s));
    verifyTpm2(input(ecc, { signature: lowSig }));
    verifyTpm2(input(ecc));
  });

  test('refuses a quote for another message', () => {
    const other = Uint8Array.from(TPM_MESSAGE);
    other[0]! ^= 1;
    rejects(() => verifyTpm2(input(ecc, { expectedMessage: other })), 'ATTEST_WRONG_NONCE');
    rejects(
      () => verifyTpm2(input(ecc, { expectedMessage: TPM_MESSAGE.subarray(0, 31) })),
      'ATTEST_MALFORMED',
    );
  });

  test('refuses every single flipped byte of the attestation and the signature', () => {
    for (const c of CASES) {
      for (const field of ['attest', 'signature'] as const) {
        const good = input(c)[field];
        for (let i = 0; i < good.length; i++) {
          const bad = Uint8Array.from(good);
          bad[i]! ^= 0x01 << (i % 8);
          assert.throws(
            () => verifyTpm2(input(c, { [field]: bad })),
            (err: unknown) =>
              err instanceof AttestationError &&
              ['ATTEST_BAD_SIGNATURE', 'ATTEST_MALFORMED'].includes(err.code),
            `${c.label} ${field} byte ${i}`,
          );
        }
      }
    }
  });

  test('a vendor root that does not parse is a state reason (untrusted root), not malformed evidence', () => {
    // Roots come from governance, not from the evidence: ATTEST_MALFORMED would be cached for good
    // and blamed on the relay (node mempool policy), although a root fix makes the evidence pass.
    const notACertificate = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]);
    rejects(() => verifyTpm2(input(ecc, { roots: [notACertificate] })), 'ATTEST_UNTRUSTED_ROOT');
    rejects(() => verifyTpm2(input(ecc, { roots: [root, notACertificate] })), 'ATTEST_UNTRUSTED_ROOT');
  });

  test('refuses a chain to another root, a look-alike intermediate, and a mismatched AK', () => {
    const nv = nvidiaSample();
    rejects(() => verifyTpm2(input(ecc, { roots: nv.roots })), 'ATTEST_UNTRUSTED_ROOT');
    rejects(
      () => verifyTpm2(input(ecc, { chain: [tpmFixture('impostor-lookalike.der')] })),
      'ATTEST_CHAIN_BROKEN',
    );
    rejects(
      () => verifyTpm2(input(ecc, { chain: [tpmFixture('impostor-forged-ski.der')] })),
      'ATTEST_BAD_SIGNATURE',
    );
    rejects(() => verifyTpm2(input(ecc, { chain: [intRsa] })), 'ATTEST_CHAIN_BROKEN');
    // The RSA quote with the ECC AK's certificate, and the RSASSA quote with the PSS AK's.
    rejects(
      () => verifyTpm2(input(CASES[3]!, { akCertificate: tpmFixture('ak-ecc-cert.der'), chain: [intEcc] })),
      'ATTEST_BAD_SIGNATURE',
    );
    rejects(
      () => verifyTpm2(input(CASES[3]!, { akCertificate: tpmFixture('ak-rsapss-cert.der') })),
      'ATTEST_BAD_SIGNATURE',
    );
    rejects(
      () => verifyTpm2(input(ecc, { akCertificate: tpmFixture('int-ecc.der'), chain: [] })),
      'ATTEST_KEY_USAGE',
    );
    verifyTpm2(input(ecc, { chain: [intEcc, root] }));
  });

  test('checks certificate validity at block time', () => {
    rejects(
      () => verifyTpm2(input(ecc, { atMs: ms('2025-12-31T23:59:59Z') })),
      'ATTEST_CERT_EXPIRED',
      /not valid yet/,
    );
    rejects(
      () => verifyTpm2(input(ecc, { atMs: ms('2036-01-01T00:00:01Z') })),
      'ATTEST_CERT_EXPIRED',
      /expired/,
    );
    verifyTpm2(input(ecc, { atMs: ms('2026-01-01T00:00:00Z') }));
    verifyTpm2(input(ecc, { atMs: ms('2036-01-01T00:00:00.999Z') }));
  });

  test('refuses revoked AK, intermediate and root certificates (by issuer and serial)', () => {
    const ids = [tpmFixture('ak-ecc-cert.der'), intEcc, root].map((d) =>
      certificateRevocationId(parseCertificate(d)),
    );
    for (const id of ids) {
      rejects(() => verifyTpm2(input(ecc, { revokedSerials: new Set([id]) })), 'ATTEST_CERT_REVOKED');
    }
    // The same serials under another issuer, and bare serials, revoke nothing here.
    const other = '00'.repeat(16);
    verifyTpm2(
      input(ecc, {
        revokedSerials: new Set([...ids.map((id) => `${other}:${id.split(':')[1]}`), '2001', '1002', '1001']),
      }),
    );
  });
});

describe('verifyTpm2Attestation (a registered AK, no certificates)', () => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const spki = parseSubjectPublicKeyInfo(
    new Uint8Array(p384.publicKey.export({ type: 'spki', format: 'der' })),
  );

  function syntheticTime(extraData: Uint8Array, clock: bigint, resetCount: number): Uint8Array {
    const b = Buffer.alloc(4 + 2 + 2 + 2 + extraData.length + 17 + 8 + 8 + 17 + 8);
    let o = 0;
    o = b.writeUInt32BE(TPM_GENERATED_VALUE, o);
    o = b.writeUInt16BE(0x8019, o);
    o = b.writeUInt16BE(0, o); // empty qualifiedSigner
    o = b.writeUInt16BE(extraData.length, o);
    b.set(extraData, o);
    o += extraData.length;
    for (let k = 0; k < 2; k++) {
      if (k === 1) o = b.writeBigUInt64BE(123456n, o); // TPMS_TIME_INFO.time
      o = b.writeBigUInt64BE(clock, o);
      o = b.writeUInt32BE(resetCount, o);
      o = b.writeUInt32BE(0, o);
      o = b.writeUInt8(1, o);
      o = b.writeBigUInt64BE(0x2019102300163636n, o);
    }
    assert.equal(o, b.length);
    return new Uint8Array(b);
  }

  function tpmEcdsa(hashAlg: number, r: Uint8Array, s: Uint8Array): Uint8Array {
    const b = Buffer.alloc(6 + r.length + 2 + s.length);
    let o = b.writeUInt16BE(TPM_ALG.ECDSA, 0);
    o = b.writeUInt16BE(hashAlg, o);
    o = b.writeUInt16BE(r.length, o);
    b.set(r, o);
    o += r.length;
    o = b.writeUInt16BE(s.length, o);
    b.set(s, o);
    return new Uint8Array(b);
  }

  test('accepts ECDSA P-384 with SHA-384, including r and s with their leading zeros dropped', () => {
    const attest = syntheticTime(TPM_MESSAGE, 1000n, 1);
    const raw = new Uint8Array(sign('sha384', attest, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }));
    const s384 = tpmEcdsa(TPM_ALG.SHA384, raw.subarray(0, 48), raw.subarray(48));
    assert.equal(verifyTpm2Attestation(attest, s384, spki, TPM_MESSAGE).clockInfo.clock, 1000n);
    // The same signature labelled SHA-256 does not verify.
    const s256 = tpmEcdsa(TPM_ALG.SHA256, raw.subarray(0, 48), raw.subarray(48));
    rejects(() => verifyTpm2Attestation(attest, s256, spki, TPM_MESSAGE), 'ATTEST_BAD_SIGNATURE');
    // About one signature in 128 has r or s below 2^376; a TPM may send those without the zero byte.
    for (let clock = 1001n; clock < 20_000n; clock++) {
      const a = syntheticTime(TPM_MESSAGE, clock, 1);
      const sig = new Uint8Array(sign('sha384', a, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }));
      const r = sig.subarray(0, 48);
      const s = sig.subarray(48);
      if (r[0] !== 0 && s[0] !== 0) continue;
      const strip = (x: Uint8Array) => x.subarray(x.findIndex((v) => v !== 0));
      assert.ok(strip(r).length < 48 || strip(s).length < 48);
      verifyTpm2Attestation(a, tpmEcdsa(TPM_ALG.SHA384, strip(r), strip(s)), spki, TPM_MESSAGE);
      return;
    }
    assert.fail('no signature with a leading zero byte');
  });

  test('refuses a signature by another key and an oversized scalar', () => {
    const attest = syntheticTime(TPM_MESSAGE, 5n, 1);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const raw = new Uint8Array(sign('sha384', attest, { key: other.privateKey, dsaEncoding: 'ieee-p1363' }));
    rejects(
      () =>
        verifyTpm2Attestation(
          attest,
          tpmEcdsa(TPM_ALG.SHA384, raw.subarray(0, 48), raw.subarray(48)),
          spki,
          TPM_MESSAGE,
        ),
      'ATTEST_BAD_SIGNATURE',
    );
    const mine = new Uint8Array(sign('sha384', attest, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }));
    const longR = concatBytes(Uint8Array.of(1), mine.subarray(0, 48));
    rejects(
      () =>
        verifyTpm2Attestation(attest, tpmEcdsa(TPM_ALG.SHA384, longR, mine.subarray(48)), spki, TPM_MESSAGE),
      'ATTEST_BAD_SIGNATURE',
    );
  });

  test('a signature over something else than TPMS_ATTEST bytes is refused before any crypto', () => {
    // What an attacker with a non-restricted key could sign: data without the TPM_GENERATED magic.
    const forged = syntheticTime(TPM_MESSAGE, 5n, 1);
    forged[0] = 0;
    const raw = new Uint8Array(sign('sha384', forged, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }));
    rejects(
      () =>
        verifyTpm2Attestation(
          forged,
          tpmEcdsa(TPM_ALG.SHA384, raw.subarray(0, 48), raw.subarray(48)),
          spki,
          TPM_MESSAGE,
        ),
      'ATTEST_MALFORMED',
      /magic/,
    );
  });
});

describe('checkTpmClockMonotonic', () => {
  const clockOf = (c: Case) => tpmClockFromStatement(verifyTpm2(input(c)));
  const quote = clockOf(CASES[0]!);
  const time = clockOf(CASES[1]!);
  const reboot = clockOf(CASES[2]!);

  test('follows the real TPM through a quote, a time attestation and a reset', () => {
    assert.equal(checkTpmClockMonotonic(null, quote), 'first');
    assert.equal(checkTpmClockMonotonic(quote, time), 'continued');
    assert.equal(reboot.resetCount, time.resetCount + 1);
    assert.equal(checkTpmClockMonotonic(time, reboot), 'reboot');
    rejects(() => checkTpmClockMonotonic(reboot, time), 'ATTEST_CLOCK_REGRESSED', /resetCount/);
    rejects(() => checkTpmClockMonotonic(time, quote), 'ATTEST_CLOCK_REGRESSED', /clock went back/);
  });

  test('restartCount: a resume is reported, going back without a reset is refused', () => {
    const a: TpmClockState = { clock: 100n, resetCount: 3, restartCount: 1 };
    assert.equal(checkTpmClockMonotonic(a, { clock: 150n, resetCount: 3, restartCount: 2 }), 'restart');
    assert.equal(checkTpmClockMonotonic(a, { clock: 100n, resetCount: 3, restartCount: 1 }), 'continued');
    rejects(
      () => checkTpmClockMonotonic(a, { clock: 150n, resetCount: 3, restartCount: 0 }),
      'ATTEST_CLOCK_REGRESSED',
      /restartCount/,
    );
    // After a reset the clock may restart lower (an unorderly shutdown loses the last NV save).
    assert.equal(checkTpmClockMonotonic(a, { clock: 5n, resetCount: 4, restartCount: 0 }), 'reboot');
  });

  test('accepts exactly the sequences that never go back (model check)', () => {
    const state = fc.record({
      clock: fc.bigInt({ min: 0n, max: 20n }),
      resetCount: fc.integer({ min: 0, max: 3 }),
      restartCount: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(state, state, (prev, next) => {
        const ok =
          next.resetCount > prev.resetCount ||
          (next.resetCount === prev.resetCount &&
            next.restartCount >= prev.restartCount &&
            next.clock >= prev.clock);
        let accepted = true;
        try {
          checkTpmClockMonotonic(prev, next);
        } catch (err) {
          assert.ok(err instanceof AttestationError && err.code === 'ATTEST_CLOCK_REGRESSED');
          accepted = false;
        }
        assert.equal(accepted, ok);
      }),
      { numRuns: 2000 },
    );
  });
});
