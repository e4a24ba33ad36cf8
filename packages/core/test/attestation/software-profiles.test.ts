import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import { rejects as rejectsWith } from '@unc/test-utils';
import fc from 'fast-check';
import { devSoftKeyChipId, verifyDevSoft } from '../../src/attestation/dev-soft.js';
import { AttestationError } from '../../src/attestation/errors.js';
import {
  type RsaAllowListInput,
  rsaAllowListChipId,
  verifyRsaAllowList,
} from '../../src/attestation/rsa-allowlist.js';
import { parseSubjectPublicKeyInfo } from '../../src/attestation/x509.js';
import { toHex } from '../../src/bytes.js';
import { ed25519PublicKey, ed25519Sign } from '../../src/crypto/ed25519.js';
import { sha256 } from '../../src/crypto/hash.js';
import { der } from './helpers.js';

const rejects = (fn: () => unknown, code: string, re?: RegExp) => rejectsWith(fn, AttestationError, code, re);

const message = sha256(new TextEncoder().encode('UNC/register test'));

describe('rsa2048-allowlist', () => {
  const chip = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = (k: KeyObject) => new Uint8Array(k.export({ type: 'spki', format: 'der' }));
  const chipSpki = spki(chip.publicKey);
  const chipHex = toHex(rsaAllowListChipId(chipSpki));
  const allowList = { [chipHex]: 'UNC-CHIP-A' };
  const sig = (m: Uint8Array, key: KeyObject = chip.privateKey) => new Uint8Array(sign('sha256', m, key));
  const input = (over: Partial<RsaAllowListInput> = {}): RsaAllowListInput => ({
    publicKey: chipSpki,
    signature: sig(message),
    allowList,
    expectedMessage: message,
    vendorId: 'unc-foundation',
    ...over,
  });

  test('accepts an allow-listed chip signing the message (PKCS#1 v1.5, SHA-256)', () => {
    const s = verifyRsaAllowList(input());
    assert.equal(s.profile, 'rsa2048-allowlist');
    assert.equal(toHex(s.chipId), chipHex);
    assert.equal(s.modelId, 'UNC-CHIP-A');
    assert.equal(s.vendorId, 'unc-foundation');
    assert.deepEqual(s.message, message);
  });

  test('takes a key in its one SubjectPublicKeyInfo encoding only (rsaEncryption with NULL)', () => {
    // The same key with the absent rsaEncryption parameters instead of NULL: one chip id, but the
    // allow-list is keyed by the listed bytes, so a second encoding let a removal in the other one
    // remove nothing (audit audchip C4; CONSENSUS CHANGE, review revchip): refused.
    const key = parseSubjectPublicKeyInfo(chipSpki).key;
    assert.equal(key.kind, 'rsa');
    if (key.kind !== 'rsa') return;
    const rsaPublicKey = der.seq(der.uint(key.modulus), der.uint(key.exponent));
    const noParams = der.seq(der.seq(der.oid('1.2.840.113549.1.1.1')), der.bit(rsaPublicKey));
    assert.notDeepEqual(noParams, chipSpki);
    rejects(() => rsaAllowListChipId(noParams), 'ATTEST_MALFORMED', /one encoding/);
    rejects(() => verifyRsaAllowList(input({ publicKey: noParams })), 'ATTEST_MALFORMED', /one encoding/);
  });

  test('refuses a key that is not on the allow-list, whatever the lookup key', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    rejects(
      () =>
        verifyRsaAllowList(
          input({ publicKey: spki(other.publicKey), signature: sig(message, other.privateKey) }),
        ),
      'ATTEST_NOT_ALLOWLISTED',
    );
    rejects(() => verifyRsaAllowList(input({ allowList: {} })), 'ATTEST_NOT_ALLOWLISTED');
    // Inherited properties are not entries.
    const proto = Object.create({ [chipHex]: 'inherited' }) as Record<string, string>;
    rejects(() => verifyRsaAllowList(input({ allowList: proto })), 'ATTEST_NOT_ALLOWLISTED');
  });

  test('refuses a signature over another message, by another key, or with another padding', () => {
    const other = Uint8Array.from(message);
    other[0]! ^= 1;
    rejects(() => verifyRsaAllowList(input({ signature: sig(other) })), 'ATTEST_BAD_SIGNATURE');
    rejects(() => verifyRsaAllowList(input({ expectedMessage: other })), 'ATTEST_BAD_SIGNATURE');
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
    rejects(
      () => verifyRsaAllowList(input({ signature: sig(message, stranger.privateKey) })),
      'ATTEST_BAD_SIGNATURE',
    );
    const pss = new Uint8Array(
      sign('sha256', message, { key: chip.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING }),
    );
    rejects(() => verifyRsaAllowList(input({ signature: pss })), 'ATTEST_BAD_SIGNATURE');
    // Signing the digest of the message instead of the message is another signature.
    rejects(() => verifyRsaAllowList(input({ signature: sig(sha256(message)) })), 'ATTEST_BAD_SIGNATURE');
    rejects(() => verifyRsaAllowList(input({ signature: sig(message).subarray(1) })), 'ATTEST_BAD_SIGNATURE');
  });

  test('refuses keys that are not RSA-2048', () => {
    const big = generateKeyPairSync('rsa', { modulusLength: 3072 });
    rejects(
      () => verifyRsaAllowList(input({ publicKey: spki(big.publicKey) })),
      'ATTEST_MALFORMED',
      /RSA-2048/,
    );
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    rejects(
      () => verifyRsaAllowList(input({ publicKey: spki(ec.publicKey) })),
      'ATTEST_MALFORMED',
      /RSA-2048/,
    );
    rejects(() => verifyRsaAllowList(input({ publicKey: new Uint8Array(10) })), 'ATTEST_MALFORMED');
  });

  test('any flipped bit of the signature is refused (property)', () => {
    const good = sig(message);
    fc.assert(
      fc.property(fc.nat(good.length * 8 - 1), (bit) => {
        const bad = Uint8Array.from(good);
        bad[bit >> 3]! ^= 1 << (bit & 7);
        rejects(() => verifyRsaAllowList(input({ signature: bad })), 'ATTEST_BAD_SIGNATURE');
      }),
      { numRuns: 200 },
    );
  });
});

describe('dev-soft', () => {
  const seed = sha256(new TextEncoder().encode('dev-soft test seed'));
  const publicKey = ed25519PublicKey(seed);
  const input = (over: Partial<Parameters<typeof verifyDevSoft>[0]> = {}) => ({
    publicKey,
    signature: ed25519Sign(seed, message),
    modelId: 'DEV-GPU',
    devSoftEnabled: true,
    expectedMessage: message,
    vendorId: 'dev',
    ...over,
  });

  test('accepts an Ed25519 signature over the message where genesis enables the profile', () => {
    const s = verifyDevSoft(input());
    assert.equal(s.profile, 'dev-soft');
    assert.deepEqual(s.chipId, devSoftKeyChipId(publicKey));
    assert.equal(s.modelId, 'DEV-GPU');
    assert.equal(s.details.publicKey, toHex(publicKey));
  });

  test('is refused outright where genesis does not enable it, even with a valid signature', () => {
    rejects(() => verifyDevSoft(input({ devSoftEnabled: false })), 'ATTEST_PROFILE_DISABLED');
  });

  test('refuses bad signatures, other messages and malformed keys', () => {
    const other = Uint8Array.from(message);
    other[5]! ^= 4;
    rejects(() => verifyDevSoft(input({ expectedMessage: other })), 'ATTEST_BAD_SIGNATURE');
    rejects(() => verifyDevSoft(input({ signature: ed25519Sign(seed, other) })), 'ATTEST_BAD_SIGNATURE');
    rejects(() => verifyDevSoft(input({ publicKey: publicKey.subarray(1) })), 'ATTEST_MALFORMED');
    rejects(() => verifyDevSoft(input({ modelId: '' })), 'ATTEST_UNKNOWN_MODEL');
    rejects(() => verifyDevSoft(input({ expectedMessage: message.subarray(0, 16) })), 'ATTEST_MALFORMED');
  });
});
