import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runUnc, tempHome } from './helpers.js';

// Evidence written by the standard tools: tpm2-tools against swtpm, and NVIDIA's published H100 sample.
const fixtures = new URL('../../../core/test/attestation/fixtures/', import.meta.url).pathname;
const tpm = (f: string) => join(fixtures, 'tpm', f);
const nv = (f: string) => join(fixtures, 'nvidia-h100', f);
const message = readFileSync(tpm('message.hex'), 'utf8').trim();
const AT = '2027-01-01T00:00:00Z';
const home = tempHome();
after(() => home.cleanup());

function tpmArgs(kind: 'quote' | 'time', extra: string[] = []): string[] {
  return [
    'attest',
    'verify',
    '--profile',
    'tpm2',
    '--attest',
    tpm(`${kind}-ecc.attest`),
    '--signature',
    tpm(`${kind}-ecc.sig`),
    '--ak-cert',
    tpm('ak-ecc-cert.der'),
    '--chain',
    tpm('int-ecc.der'),
    '--root',
    tpm('root.der'),
    '--message',
    message,
    '--at',
    AT,
    '--output',
    'json',
    ...extra,
  ];
}

test('tpm2_quote and tpm2_gettime evidence verifies offline and names chip, model and message', async () => {
  for (const kind of ['quote', 'time'] as const) {
    const r = await runUnc(tpmArgs(kind));
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as {
      profile: string;
      modelId: string;
      message: string;
      chipId: string;
      details: { attestType: string };
    };
    assert.equal(s.profile, 'tpm2');
    assert.equal(s.modelId, 'UNC-TPU-1');
    assert.equal(s.message, message);
    assert.equal(s.chipId.length, 64);
    assert.equal(s.details.attestType, kind === 'quote' ? 'quote' : 'time');
  }
});

test('tpm2: a wrong message, an expired certificate or a wrong root is refused with a precise error', async () => {
  const wrong = await runUnc(tpmArgs('quote', ['--message', '00'.repeat(32)]));
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /ATTEST_WRONG_NONCE/);
  const expired = await runUnc(tpmArgs('quote', ['--at', '2040-01-01T00:00:00Z']));
  assert.notEqual(expired.code, 0);
  assert.match(expired.stderr, /ATTEST_CERT_EXPIRED|expired|not valid/i);
  const rootless = await runUnc(tpmArgs('quote', ['--root', nv('device_root.pem')]));
  assert.notEqual(rootless.code, 0);
  assert.match(rootless.stderr, /ATTEST_/);
});

test('nvidia-spdm: the published H100 report verifies; a tampered copy does not', async () => {
  const hex = readFileSync(nv('report.hex'), 'utf8').replace(/\s+/g, '');
  const nonce = hex.slice(8, 72);
  const args = (report: string) => [
    'attest',
    'verify',
    '--profile',
    'nvidia-spdm',
    '--report',
    report,
    '--chain',
    nv('chain.pem'),
    '--root',
    nv('device_root.pem'),
    '--nonce',
    nonce,
    '--at',
    '2025-01-01T00:00:00Z',
    '--output',
    'json',
  ];
  const ok = await runUnc(args(nv('report.hex')));
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as { modelId: string }).modelId, 'gh100-1010-0200-882');
  const tampered = join(home.dir, 'tampered.hex');
  const pos = 200;
  writeFileSync(tampered, hex.slice(0, pos) + (hex[pos] === '0' ? '1' : '0') + hex.slice(pos + 1));
  const bad = await runUnc(args(tampered));
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /ATTEST_/);
});
