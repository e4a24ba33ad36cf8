import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import { rejects as rejectsWith } from '@unc/test-utils';
import fc from 'fast-check';
import {
  ATTESTATION_PROFILES,
  AttestationError,
  certificateRevocationId,
  type Evidence,
  evidenceCodec,
  parseCertificate,
  rsaAllowListChipId,
  type TrustContext,
  type VendorTrust,
  verifyEvidence,
} from '../../src/attestation/index.js';
import { equalBytes, toHex } from '../../src/bytes.js';
import { ed25519PublicKey, ed25519Sign } from '../../src/crypto/ed25519.js';
import { sha256 } from '../../src/crypto/hash.js';
import { decode, encode } from '../../src/encoding/codec.js';
import { DecodeError } from '../../src/errors.js';
import { nvidiaSample, TPM_AT, TPM_MESSAGE, tpmFixture } from './helpers.js';

const rejects = (fn: () => unknown, code: string, re?: RegExp) => rejectsWith(fn, AttestationError, code, re);

const nv = nvidiaSample();
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaSpki = new Uint8Array(rsa.publicKey.export({ type: 'spki', format: 'der' }));
const devSeed = sha256(new TextEncoder().encode('evidence test dev key'));

/** Each profile's evidence together with the message it binds. */
const CASES: { evidence: Evidence; message: Uint8Array; model: string }[] = [
  {
    evidence: {
      type: 'tpm2',
      vendorId: 'test-tpm',
      attest: tpmFixture('quote-ecc.attest'),
      signature: tpmFixture('quote-ecc.sig'),
      akCertificate: tpmFixture('ak-ecc-cert.der'),
      chain: [tpmFixture('int-ecc.der')],
    },
    message: TPM_MESSAGE,
    model: 'UNC-TPU-1',
  },
  {
    evidence: {
      type: 'nvidia-spdm',
      vendorId: 'nvidia',
      request: nv.request,
      response: nv.response,
      chain: nv.chain,
    },
    message: nv.nonce,
    model: 'gh100-1010-0200-882',
  },
  {
    evidence: {
      type: 'rsa2048-allowlist',
      vendorId: 'unc-foundation',
      publicKey: rsaSpki,
      signature: new Uint8Array(sign('sha256', TPM_MESSAGE, rsa.privateKey)),
    },
    message: TPM_MESSAGE,
    model: 'UNC-CHIP-A',
  },
  {
    evidence: {
      type: 'dev-soft',
      vendorId: 'dev',
      modelId: 'DEV-GPU',
      publicKey: ed25519PublicKey(devSeed),
      signature: ed25519Sign(devSeed, TPM_MESSAGE),
    },
    message: TPM_MESSAGE,
    model: 'DEV-GPU',
  },
];

const VENDORS: VendorTrust[] = [
  {
    vendorId: 'test-tpm',
    profile: 'tpm2',
    roots: [tpmFixture('root.der')],
    revokedSerials: [],
    revokedChipIds: [],
  },
  {
    vendorId: 'nvidia',
    profile: 'nvidia-spdm',
    roots: nv.roots,
    revokedSerials: [],
    revokedChipIds: [],
    models: ['gh100-1010-0200-882'],
  },
  {
    vendorId: 'unc-foundation',
    profile: 'rsa2048-allowlist',
    roots: [],
    revokedSerials: [],
    revokedChipIds: [],
    allowList: { [toHex(rsaAllowListChipId(rsaSpki))]: 'UNC-CHIP-A' },
  },
  { vendorId: 'dev', profile: 'dev-soft', roots: [], revokedSerials: [], revokedChipIds: [] },
];

const TRUST: TrustContext = { vendors: VENDORS, devSoftEnabled: true };

function withVendor(id: string, change: Partial<VendorTrust>): TrustContext {
  return { ...TRUST, vendors: VENDORS.map((v) => (v.vendorId === id ? { ...v, ...change } : v)) };
}

describe('Evidence codec', () => {
  test('round-trips every profile and starts with its stable tag', () => {
    CASES.forEach(({ evidence }, i) => {
      const bytes = encode(evidenceCodec, evidence);
      assert.equal(bytes[0], i + 1);
      assert.deepEqual(decode(evidenceCodec, bytes), evidence);
    });
  });

  test('refuses unknown tags, trailing bytes and oversized fields', () => {
    const bytes = encode(evidenceCodec, CASES[3]!.evidence);
    assert.throws(() => decode(evidenceCodec, Uint8Array.of(9, ...bytes.subarray(1))), DecodeError);
    assert.throws(() => decode(evidenceCodec, Uint8Array.of(...bytes, 0)), DecodeError);
    const huge = { ...CASES[0]!.evidence, attest: new Uint8Array(4096) } as Evidence;
    assert.throws(() => encode(evidenceCodec, huge), RangeError);
  });
});

describe('verifyEvidence', () => {
  for (const { evidence, message, model } of CASES) {
    test(`accepts ${evidence.type} evidence and names the vendor`, () => {
      const s = verifyEvidence(evidence, TRUST, TPM_AT, message);
      assert.equal(s.profile, evidence.type);
      assert.equal(s.vendorId, evidence.vendorId);
      assert.equal(s.modelId, model);
      assert.equal(s.chipId.length, 32);
      assert.deepEqual(s.message, message);
    });
  }

  test('chip ids of different profiles never collide, and each is stable', () => {
    const ids = CASES.map(({ evidence, message }) =>
      toHex(verifyEvidence(evidence, TRUST, TPM_AT, message).chipId),
    );
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(
      CASES.map(({ evidence, message }) => toHex(verifyEvidence(evidence, TRUST, TPM_AT, message).chipId)),
      ids,
    );
  });

  test('refuses evidence of one profile presented for a vendor of another', () => {
    for (const { evidence, message } of CASES) {
      for (const vendor of VENDORS) {
        if (vendor.profile === evidence.type) continue;
        rejects(
          () => verifyEvidence({ ...evidence, vendorId: vendor.vendorId }, TRUST, TPM_AT, message),
          'ATTEST_WRONG_PROFILE',
        );
      }
    }
  });

  test('evidence re-tagged as another profile never verifies', () => {
    // The bytes of one profile's evidence read under every other tag, sent to that profile's vendor.
    for (const { evidence, message } of CASES) {
      const bytes = encode(evidenceCodec, evidence);
      for (let tag = 1; tag <= ATTESTATION_PROFILES.length; tag++) {
        if (tag === bytes[0]) continue;
        const retagged = Uint8Array.from(bytes);
        retagged[0] = tag;
        let decoded: Evidence;
        try {
          decoded = decode(evidenceCodec, retagged);
        } catch (err) {
          assert.ok(err instanceof DecodeError);
          continue;
        }
        const vendor = VENDORS.find((v) => v.profile === decoded.type)!;
        assert.throws(
          () => verifyEvidence({ ...decoded, vendorId: vendor.vendorId }, TRUST, TPM_AT, message),
          AttestationError,
        );
      }
    }
  });

  test('evidence fields moved into another profile never verify', () => {
    const [tpm, nvidia, rsaCase, dev] = CASES.map((c) => c.evidence) as [
      Extract<Evidence, { type: 'tpm2' }>,
      Extract<Evidence, { type: 'nvidia-spdm' }>,
      Extract<Evidence, { type: 'rsa2048-allowlist' }>,
      Extract<Evidence, { type: 'dev-soft' }>,
    ];
    const attempts: Evidence[] = [
      {
        type: 'nvidia-spdm',
        vendorId: 'nvidia',
        request: tpm.attest,
        response: tpm.signature,
        chain: [tpm.akCertificate, ...tpm.chain],
      },
      {
        type: 'tpm2',
        vendorId: 'test-tpm',
        attest: nvidia.request,
        signature: nvidia.response,
        akCertificate: nvidia.chain[0]!,
        chain: nvidia.chain.slice(1),
      },
      {
        type: 'rsa2048-allowlist',
        vendorId: 'unc-foundation',
        publicKey: tpm.akCertificate,
        signature: tpm.signature,
      },
      {
        type: 'dev-soft',
        vendorId: 'dev',
        modelId: 'X',
        publicKey: dev.publicKey,
        signature: rsaCase.signature.subarray(0, 64),
      },
      {
        type: 'tpm2',
        vendorId: 'test-tpm',
        attest: TPM_MESSAGE,
        signature: rsaCase.signature,
        akCertificate: tpm.akCertificate,
        chain: tpm.chain,
      },
    ];
    for (const e of attempts) {
      for (const m of [TPM_MESSAGE, nv.nonce])
        assert.throws(() => verifyEvidence(e, TRUST, TPM_AT, m), AttestationError, e.type);
    }
  });

  test('refuses unknown and duplicated vendors', () => {
    rejects(
      () => verifyEvidence({ ...CASES[3]!.evidence, vendorId: 'nobody' }, TRUST, TPM_AT, TPM_MESSAGE),
      'ATTEST_UNKNOWN_VENDOR',
    );
    rejects(
      () => verifyEvidence({ ...CASES[3]!.evidence, vendorId: '__proto__' }, TRUST, TPM_AT, TPM_MESSAGE),
      'ATTEST_UNKNOWN_VENDOR',
    );
    const doubled: TrustContext = { ...TRUST, vendors: [...VENDORS, VENDORS[3]!] };
    rejects(
      () => verifyEvidence(CASES[3]!.evidence, doubled, TPM_AT, TPM_MESSAGE),
      'ATTEST_MALFORMED',
      /twice/,
    );
  });

  test('applies the vendor revocation lists: certificate serials and chip ids', () => {
    const { evidence, message } = CASES[1]!;
    rejects(
      () =>
        verifyEvidence(
          evidence,
          withVendor('nvidia', {
            revokedSerials: [
              certificateRevocationId(
                nv.chain.map((d) => parseCertificate(d)).find((c) => c.serialHex === '41431d480fe5e87274')!,
              ),
            ],
          }),
          TPM_AT,
          message,
        ),
      'ATTEST_CERT_REVOKED',
    );
    for (const { evidence: e, message: m } of CASES) {
      const chip = toHex(verifyEvidence(e, TRUST, TPM_AT, m).chipId);
      rejects(
        () => verifyEvidence(e, withVendor(e.vendorId, { revokedChipIds: [chip.toUpperCase()] }), TPM_AT, m),
        'ATTEST_CHIP_REVOKED',
      );
    }
  });

  test('applies the vendor model list', () => {
    const { evidence, message } = CASES[1]!;
    rejects(
      () => verifyEvidence(evidence, withVendor('nvidia', { models: ['GB200'] }), TPM_AT, message),
      'ATTEST_UNKNOWN_MODEL',
      /gh100-1010-0200-882/,
    );
    // The die alone names no model (audchip C1: the board decides the compute).
    rejects(
      () => verifyEvidence(evidence, withVendor('nvidia', { models: ['GH100'] }), TPM_AT, message),
      'ATTEST_UNKNOWN_MODEL',
    );
    verifyEvidence(
      evidence,
      withVendor('nvidia', { models: ['GB200', 'gh100-1010-0200-882'] }),
      TPM_AT,
      message,
    );
  });

  test('refuses dev-soft on a chain that does not enable it', () => {
    const { evidence, message } = CASES[3]!;
    rejects(
      () => verifyEvidence(evidence, { ...TRUST, devSoftEnabled: false }, TPM_AT, message),
      'ATTEST_PROFILE_DISABLED',
    );
  });

  test('refuses bad call arguments as malformed, never as a crash', () => {
    const { evidence, message } = CASES[0]!;
    rejects(() => verifyEvidence(evidence, TRUST, TPM_AT, message.subarray(0, 31)), 'ATTEST_MALFORMED');
    rejects(() => verifyEvidence(evidence, TRUST, -1n, message), 'ATTEST_MALFORMED');
    const broken = { ...evidence, chain: null } as unknown as Evidence;
    rejects(() => verifyEvidence(broken, TRUST, TPM_AT, message), 'ATTEST_MALFORMED');
  });

  test('random evidence of every profile is refused with an AttestationError (property)', () => {
    const bytes = (max: number) => fc.uint8Array({ maxLength: max });
    const arbitrary: fc.Arbitrary<Evidence> = fc.oneof(
      fc.record({
        type: fc.constant('tpm2' as const),
        vendorId: fc.constant('test-tpm'),
        attest: bytes(200),
        signature: bytes(100),
        akCertificate: fc.oneof(bytes(100), fc.constant(tpmFixture('ak-ecc-cert.der'))),
        chain: fc.array(bytes(50), { maxLength: 3 }),
      }),
      fc.record({
        type: fc.constant('nvidia-spdm' as const),
        vendorId: fc.constant('nvidia'),
        request: fc.oneof(bytes(40), fc.constant(nv.request)),
        response: bytes(300),
        chain: fc.oneof(fc.array(bytes(50), { maxLength: 3 }), fc.constant(nv.chain)),
      }),
      fc.record({
        type: fc.constant('rsa2048-allowlist' as const),
        vendorId: fc.constant('unc-foundation'),
        publicKey: fc.oneof(bytes(300), fc.constant(rsaSpki)),
        signature: bytes(256),
      }),
      fc.record({
        type: fc.constant('dev-soft' as const),
        vendorId: fc.constant('dev'),
        modelId: fc.string({ maxLength: 8 }),
        publicKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
      }),
    );
    fc.assert(
      fc.property(arbitrary, fc.uint8Array({ minLength: 32, maxLength: 32 }), (e, m) => {
        assert.throws(() => verifyEvidence(e, TRUST, TPM_AT, m), AttestationError);
      }),
      { numRuns: 500 },
    );
  });

  test('random damage to encoded evidence is refused at decoding or verification (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: CASES.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        (i, flips) => {
          const { evidence, message } = CASES[i]!;
          const bytes = encode(evidenceCodec, evidence);
          for (const [at, x] of flips) bytes[at % bytes.length]! ^= x;
          // Two flips of the same byte can cancel out: then nothing was damaged.
          if (equalBytes(bytes, encode(evidenceCodec, evidence))) return;
          let decoded: Evidence;
          try {
            decoded = decode(evidenceCodec, bytes);
          } catch (err) {
            assert.ok(err instanceof DecodeError);
            return;
          }
          try {
            verifyEvidence(decoded, TRUST, TPM_AT, message);
          } catch (err) {
            assert.ok(err instanceof AttestationError, String(err));
            return;
          }
          // Every byte is signed, a length, a tag or the vendor id, except the model a dev-soft key
          // claims (software chips prove no model; the transaction signature protects it in transit).
          const onlyModelChanged =
            decoded.type === 'dev-soft' &&
            evidence.type === 'dev-soft' &&
            decoded.modelId !== evidence.modelId &&
            equalBytes(
              encode(evidenceCodec, { ...decoded, modelId: evidence.modelId }),
              encode(evidenceCodec, evidence),
            );
          assert.ok(
            onlyModelChanged,
            `damaged ${evidence.type} evidence verified: flips ${JSON.stringify(flips)}`,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
