/**
 * Chip evidence checked on the verify workers (admission's registrations) must give exactly the
 * answer the calling thread gives: a differential test over genuine and broken evidence of every
 * profile, the TPM evidence being the swtpm fixtures of core's attestation tests.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  type ConsentCheck,
  certificateRevocationId,
  costlyCheckKey,
  type EvidenceCheck,
  ed25519PublicKey,
  ed25519Sign,
  evidenceCheckKey,
  fromHex,
  parseCertificate,
  pemToDer,
  rsaAllowListChipId,
  runConsentCheck,
  runEvidenceCheck,
  sha256,
  splitSpdmReport,
  type TrustContext,
  toHex,
  utf8,
  type VendorTrust,
} from '@unc/core';
import { VerifyPool, VerifyPoolBusy, VerifyPoolClosed } from '../src/verify-pool.js';

const FIXTURES = new URL('../../../core/test/attestation/fixtures/', import.meta.url);
const fixture = (name: string) => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
const TPM_MESSAGE = fromHex(readFileSync(new URL('tpm/message.hex', FIXTURES), 'utf8').trim(), 32);
/** Inside the TPM fixtures' validity window (2026-01-01 .. 2036-01-01). */
const TPM_AT = BigInt(Date.parse('2030-06-01T00:00:00Z'));
const NVIDIA_AT = BigInt(Date.parse('2025-06-01T00:00:00Z'));

const tpmVendor: VendorTrust = {
  vendorId: 'test-tpm',
  profile: 'tpm2',
  roots: [fixture('tpm/root.der')],
  revokedSerials: [],
  revokedChipIds: [],
};
const trust = (v: VendorTrust): TrustContext => ({ vendors: [v], devSoftEnabled: true });

function tpmCheck(
  kind: 'ecc' | 'rsa' | 'rsapss',
  change: { message?: Uint8Array; at?: bigint; vendor?: Partial<VendorTrust>; flipSig?: boolean } = {},
): EvidenceCheck {
  const signature = fixture(`tpm/quote-${kind}.sig`);
  if (change.flipSig) signature[signature.length - 5]! ^= 1;
  return {
    evidence: {
      type: 'tpm2',
      vendorId: 'test-tpm',
      attest: fixture(`tpm/quote-${kind}.attest`),
      signature,
      akCertificate: fixture(`tpm/ak-${kind}-cert.der`),
      chain: [fixture(kind === 'ecc' ? 'tpm/int-ecc.der' : 'tpm/int-rsa.der')],
    },
    trust: trust({ ...tpmVendor, ...change.vendor }),
    atMs: change.at ?? TPM_AT,
    message: change.message ?? TPM_MESSAGE,
  };
}

function nvidiaCheck(at = NVIDIA_AT): EvidenceCheck {
  const nv = new URL('nvidia-h100/', FIXTURES);
  const report = fromHex(readFileSync(new URL('report.hex', nv), 'utf8').trim());
  const { request, response } = splitSpdmReport(report);
  return {
    evidence: {
      type: 'nvidia-spdm',
      vendorId: 'nvidia',
      request,
      response,
      chain: pemToDer(readFileSync(new URL('chain.pem', nv), 'utf8')),
    },
    trust: trust({
      vendorId: 'nvidia',
      profile: 'nvidia-spdm',
      roots: pemToDer(readFileSync(new URL('device_root.pem', nv), 'utf8')),
      revokedSerials: [],
      revokedChipIds: [],
    }),
    atMs: at,
    message: request.slice(4, 36),
  };
}

function devSoftCheck(forge: boolean, enabled = true): EvidenceCheck {
  const seed = sha256(utf8('evidence workers dev key'));
  const signature = ed25519Sign(seed, TPM_MESSAGE);
  if (forge) signature[0]! ^= 1;
  return {
    evidence: {
      type: 'dev-soft',
      vendorId: 'dev',
      modelId: 'DEV-GPU',
      publicKey: ed25519PublicKey(seed),
      signature,
    },
    trust: {
      vendors: [{ vendorId: 'dev', profile: 'dev-soft', roots: [], revokedSerials: [], revokedChipIds: [] }],
      devSoftEnabled: enabled,
    },
    atMs: TPM_AT,
    message: TPM_MESSAGE,
  };
}

/** An RSA-2048 chip key made here (the profile has no file fixture): its check, allow-listed or not. */
const rsaChip = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaSpki = new Uint8Array(rsaChip.publicKey.export({ type: 'spki', format: 'der' }));
function rsaCheck(change: { listed?: boolean; forge?: boolean } = {}): EvidenceCheck {
  const signature = new Uint8Array(sign('sha256', TPM_MESSAGE, rsaChip.privateKey));
  if (change.forge) signature[7]! ^= 1;
  const chipHex = toHex(rsaAllowListChipId(rsaSpki));
  return {
    evidence: { type: 'rsa2048-allowlist', vendorId: 'unc-rsa', publicKey: rsaSpki, signature },
    trust: trust({
      vendorId: 'unc-rsa',
      profile: 'rsa2048-allowlist',
      roots: [],
      revokedSerials: [],
      revokedChipIds: [],
      allowList: change.listed === false ? {} : { [chipHex]: 'UNC-CHIP-A' },
    }),
    atMs: TPM_AT,
    message: TPM_MESSAGE,
  };
}

const akRevocationId = certificateRevocationId(parseCertificate(fixture('tpm/ak-ecc-cert.der')));
const junk = (n: number, label: string) => {
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k += 32) out.set(sha256(utf8(`${label} ${k}`)).slice(0, n - k), k);
  return out;
};

/** Genuine evidence and one failure of each kind the verifiers tell apart. */
const CASES: { label: string; check: EvidenceCheck }[] = [
  { label: 'swtpm P-256 quote', check: tpmCheck('ecc') },
  { label: 'swtpm RSA quote', check: tpmCheck('rsa') },
  { label: 'swtpm RSA-PSS quote', check: tpmCheck('rsapss') },
  { label: 'swtpm quote over another message', check: tpmCheck('ecc', { message: sha256(utf8('other')) }) },
  { label: 'swtpm quote, signature flipped', check: tpmCheck('ecc', { flipSig: true }) },
  { label: 'swtpm quote, root not trusted', check: tpmCheck('ecc', { vendor: { roots: [] } }) },
  {
    label: 'swtpm quote, AK certificate revoked',
    check: tpmCheck('ecc', { vendor: { revokedSerials: [akRevocationId] } }),
  },
  { label: 'swtpm quote, after the certificates expired', check: tpmCheck('ecc', { at: TPM_AT * 10n }) },
  {
    label: 'swtpm quote, AK certificate must carry the EKU',
    check: tpmCheck('rsa', { vendor: { requireAkEku: true } }),
  },
  {
    label: 'made-up certificate chain',
    check: {
      ...tpmCheck('ecc'),
      evidence: {
        type: 'tpm2',
        vendorId: 'test-tpm',
        attest: junk(120, 'attest'),
        signature: junk(256, 'sig'),
        akCertificate: junk(900, 'ak'),
        chain: [junk(900, 'int')],
      },
    },
  },
  { label: 'NVIDIA SPDM report', check: nvidiaCheck() },
  { label: 'NVIDIA SPDM report, before its certificates', check: nvidiaCheck(0n) },
  { label: 'dev-soft', check: devSoftCheck(false) },
  { label: 'dev-soft, forged', check: devSoftCheck(true) },
  { label: 'dev-soft, disabled', check: devSoftCheck(false, false) },
  { label: 'RSA allow-listed chip', check: rsaCheck() },
  { label: 'RSA chip not allow-listed', check: rsaCheck({ listed: false }) },
  { label: 'RSA allow-listed chip, signature flipped', check: rsaCheck({ forge: true }) },
];

describe('evidence checks on the verify workers', () => {
  const pool = new VerifyPool({ threads: 2 });
  after(() => pool.close());

  test('give exactly the calling thread answer, for genuine and broken evidence of every profile', async () => {
    const inline = CASES.map(({ check }) => runEvidenceCheck(check));
    // Both outcomes are covered: the fixtures are genuine, and each break is refused.
    assert.deepEqual(
      inline.map((v) => v.ok),
      CASES.map(({ label }) =>
        [
          'swtpm P-256 quote',
          'swtpm RSA quote',
          'swtpm RSA-PSS quote',
          'NVIDIA SPDM report',
          'dev-soft',
          'RSA allow-listed chip',
        ].includes(label),
      ),
    );
    const onWorkers = await pool.checkEvidence(CASES.map(({ check }) => check));
    CASES.forEach(({ label }, i) => assert.deepEqual(onWorkers[i], inline[i], label));
    // One at a time, so that each goes to a worker of its own choosing too.
    for (const [i, { check, label }] of CASES.entries()) {
      const [v] = await pool.checkEvidence([check]);
      assert.deepEqual(v, inline[i], label);
    }
    assert.equal(pool.queued('admission'), 0);
    assert.equal(pool.queuedBytes('admission'), 0);
  });

  test('count against the admission lane, in checks and bytes: past either bound a call is refused, having done nothing', async () => {
    const small = new VerifyPool({
      threads: 1,
      maxQueued: { consensus: 1000, admission: 3 },
      maxQueuedBytes: { consensus: 1 << 20, admission: 1 << 20 },
    });
    const tiny = new VerifyPool({
      threads: 1,
      maxQueued: { consensus: 1000, admission: 1000 },
      maxQueuedBytes: { consensus: 1 << 20, admission: 1024 },
    });
    try {
      const check = CASES[0]!.check;
      await assert.rejects(small.checkEvidence([check, check, check, check]), VerifyPoolBusy);
      assert.equal(small.queued('admission'), 0);
      // A TPM check is a few KiB (certificates, the root): over a 1 KiB lane.
      await assert.rejects(tiny.checkEvidence([check]), VerifyPoolBusy);
      assert.equal(tiny.queuedBytes('admission'), 0);
      assert.deepEqual(
        await small.checkEvidence([check, check, check]),
        [0, 1, 2].map(() => runEvidenceCheck(check)),
      );
      assert.equal(small.queuedBytes('admission'), 0);
    } finally {
      await small.close();
      await tiny.close();
    }
  });

  test('attack: evidence bytes that are views into a large buffer (a gossip frame) go to a worker without that buffer', async () => {
    // Decoded from a Buffer (a decrypted network frame), every byte field of a transaction is a
    // view into it: structured clone copies a view with its whole buffer, per message, uncounted.
    const frame = Buffer.alloc(1 << 20);
    let at = 0;
    const view = (bytes: Uint8Array) => {
      frame.set(bytes, at);
      const v = frame.subarray(at, at + bytes.length);
      at += bytes.length;
      return v;
    };
    const genuine = tpmCheck('ecc');
    const e = genuine.evidence as Extract<EvidenceCheck['evidence'], { type: 'tpm2' }>;
    const check: EvidenceCheck = {
      ...genuine,
      evidence: {
        ...e,
        attest: view(e.attest),
        signature: view(e.signature),
        akCertificate: view(e.akCertificate),
        chain: e.chain.map(view),
      },
      message: view(genuine.message),
    };
    const posted: number[] = [];
    const walk = (v: unknown): void => {
      if (v instanceof Uint8Array) posted.push(v.buffer.byteLength);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    const original = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, message: unknown, ...rest: unknown[]) {
      if (message && typeof message === 'object' && 'evidence' in message) walk(message);
      return (original as (...a: unknown[]) => void).call(this, message, ...rest);
    };
    try {
      const [verdict] = await pool.checkEvidence([check]);
      assert.deepEqual(verdict, runEvidenceCheck(genuine));
    } finally {
      Worker.prototype.postMessage = original;
    }
    assert.ok(posted.length > 0);
    assert.ok(Math.max(...posted) < 64 * 1024, `a ${Math.max(...posted)}-byte buffer went to the worker`);
  });

  test('a closed pool answers VerifyPoolClosed, checking nothing', async () => {
    const closing = new VerifyPool({ threads: 1 });
    const answer = assert.rejects(closing.checkEvidence([CASES[0]!.check]), VerifyPoolClosed);
    await closing.close();
    await answer;
    await assert.rejects(closing.checkEvidence([CASES[0]!.check]), VerifyPoolClosed);
  });
});

/** Transfer consents (core's ConsentCheck): the swtpm quotes against their AK, dev-soft and RSA chip keys. */
function consentCases(): { label: string; check: ConsentCheck }[] {
  const ak = (kind: 'ecc' | 'rsa') => parseCertificate(fixture(`tpm/ak-${kind}-cert.der`)).publicKey.der;
  const tpm = (
    kind: 'ecc' | 'rsa',
    change: { flipSig?: boolean; key?: 'ecc' | 'rsa' } = {},
  ): ConsentCheck => {
    const signature = fixture(`tpm/quote-${kind}.sig`);
    if (change.flipSig) signature[signature.length - 5]! ^= 1;
    return {
      consent: { type: 'tpm2', attest: fixture(`tpm/quote-${kind}.attest`), signature },
      profile: 'tpm2',
      keyMaterial: ak(change.key ?? kind),
      message: TPM_MESSAGE,
    };
  };
  const dev = devSoftCheck(false).evidence as Extract<EvidenceCheck['evidence'], { type: 'dev-soft' }>;
  const rsa = rsaCheck().evidence as Extract<EvidenceCheck['evidence'], { type: 'rsa2048-allowlist' }>;
  return [
    { label: 'swtpm P-256 quote', check: tpm('ecc') },
    { label: 'swtpm RSA quote', check: tpm('rsa') },
    { label: 'swtpm quote, signature flipped', check: tpm('ecc', { flipSig: true }) },
    { label: 'swtpm quote against another AK', check: tpm('ecc', { key: 'rsa' }) },
    { label: 'swtpm quote over another message', check: { ...tpm('ecc'), message: sha256(utf8('other')) } },
    { label: 'tpm2 answer for a dev-soft chip', check: { ...tpm('ecc'), profile: 'dev-soft' } },
    {
      label: 'dev-soft',
      check: {
        consent: { type: 'dev-soft', signature: dev.signature },
        profile: 'dev-soft',
        keyMaterial: dev.publicKey,
        message: TPM_MESSAGE,
      },
    },
    {
      label: 'dev-soft, forged',
      check: {
        consent: { type: 'dev-soft', signature: (devSoftCheck(true).evidence as typeof dev).signature },
        profile: 'dev-soft',
        keyMaterial: dev.publicKey,
        message: TPM_MESSAGE,
      },
    },
    {
      label: 'RSA chip',
      check: {
        consent: { type: 'rsa2048-allowlist', signature: rsa.signature },
        profile: 'rsa2048-allowlist',
        keyMaterial: rsa.publicKey,
        message: TPM_MESSAGE,
      },
    },
    {
      label: 'RSA chip, garbled key',
      check: {
        consent: { type: 'rsa2048-allowlist', signature: rsa.signature },
        profile: 'rsa2048-allowlist',
        keyMaterial: junk(40, 'key'),
        message: TPM_MESSAGE,
      },
    },
  ];
}

describe('transfer consents on the verify workers', () => {
  test('give exactly the calling thread answer, and never share a key with an evidence check', async () => {
    const pool = new VerifyPool({ threads: 2 });
    try {
      const cases = consentCases();
      const inline = cases.map(({ check }) => runConsentCheck(check));
      assert.deepEqual(
        inline.map((v) => v.ok),
        cases.map(({ label }) =>
          ['swtpm P-256 quote', 'swtpm RSA quote', 'dev-soft', 'RSA chip'].includes(label),
        ),
      );
      const onWorkers = await pool.checkEvidence([...cases.map(({ check }) => check), CASES[0]!.check]);
      cases.forEach(({ label }, i) => assert.deepEqual(onWorkers[i], inline[i], label));
      assert.deepEqual(onWorkers[cases.length], runEvidenceCheck(CASES[0]!.check));
      const keys = new Set([...cases, ...CASES].map(({ check }) => costlyCheckKey(check)));
      assert.equal(keys.size, cases.length + CASES.length);
    } finally {
      await pool.close();
    }
  });
});

/**
 * Every check that differs from `check` in one input: each byte string with a byte flipped and one
 * longer, each number, bigint, string and flag changed, each list one longer and each element
 * changed, and the optional vendor settings set.
 */
function oneInputChanged(check: EvidenceCheck): { path: string; check: EvidenceCheck }[] {
  const out: { path: string; check: EvidenceCheck }[] = [];
  type Put = (v: unknown, path: string) => void;
  const walk = (value: unknown, path: string, put: Put): void => {
    if (value instanceof Uint8Array) {
      if (value.length > 0) {
        const flipped = value.slice();
        flipped[value.length - 1]! ^= 1;
        put(flipped, `${path} (a byte flipped)`);
      }
      const longer = new Uint8Array(value.length + 1);
      longer.set(value);
      put(longer, `${path} (one byte longer)`);
    } else if (typeof value === 'bigint') put(value + 1n, path);
    else if (typeof value === 'number') put(value + 1, path);
    else if (typeof value === 'string') put(`${value}x`, path);
    else if (typeof value === 'boolean') put(!value, path);
    else if (Array.isArray(value)) {
      put([...value, value[0] ?? new Uint8Array([1])], `${path} (one more)`);
      value.forEach((v, i) => {
        walk(v, `${path}[${i}]`, (nv, p) =>
          put(
            value.map((w, j) => (j === i ? nv : w)),
            p,
          ),
        );
      });
    } else if (value && typeof value === 'object') {
      const obj = value as Record<string, unknown>;
      for (const k of Object.keys(obj)) walk(obj[k], `${path}.${k}`, (nv, p) => put({ ...obj, [k]: nv }, p));
    }
  };
  walk(check, 'check', (v, path) => out.push({ path, check: v as EvidenceCheck }));
  const vendor = check.trust.vendors[0]!;
  const setVendor = (over: Partial<VendorTrust>, path: string) =>
    out.push({ path, check: { ...check, trust: { ...check.trust, vendors: [{ ...vendor, ...over }] } } });
  if (vendor.allowList === undefined) setVendor({ allowList: {} }, 'allowList set');
  if (vendor.models === undefined) setVendor({ models: [] }, 'models set');
  if (vendor.requireAkEku === undefined) setVendor({ requireAkEku: false }, 'requireAkEku set');
  return out;
}

describe('evidenceCheckKey', () => {
  test('changes with every input of a check: trust, message, each evidence field, block time', () => {
    for (const { label, check } of CASES) {
      const key = evidenceCheckKey(check);
      const variants = oneInputChanged(check);
      // Every part of a check is reached (the walk did not stop short).
      for (const part of [
        'check.atMs',
        'check.message',
        'check.trust.devSoftEnabled',
        'check.evidence.vendorId',
      ]) {
        assert.ok(
          variants.some((v) => v.path.startsWith(part)),
          `${label}: ${part} varied`,
        );
      }
      assert.ok(
        variants.some((v) => v.path.startsWith('check.trust.vendors[0].')),
        `${label}: vendor trust varied`,
      );
      for (const v of variants) assert.notEqual(evidenceCheckKey(v.check), key, `${label}: ${v.path}`);
    }
  });

  test('is the same for the same inputs in other objects (a copy, bytes in another buffer)', () => {
    for (const { label, check } of CASES) {
      assert.equal(evidenceCheckKey(structuredClone(check)), evidenceCheckKey(check), label);
    }
  });
});
