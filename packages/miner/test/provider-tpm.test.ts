/**
 * Receipts signed by a TPM chip: a real swtpm, provisioned by a test vendor CA, signs every job's
 * receipt with a TPM2_Quote through the TpmSigner the miner agent uses; the chip record is what
 * the chain's registration verifier derives from the chip's registration evidence. Leases come
 * from an in-memory lease table.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type Chip,
  ed25519PublicKey,
  fromHex,
  receiptDigest,
  sha256,
  toHex,
  verifyEvidence,
} from '@unc/core';
import { silentLogger } from '@unc/node';
import { decodeSignedReceipt, encodeSignedReceipt, ProviderClient, verifyReceiptOffline } from '@unc/sdk';
import {
  createVendorCa,
  ProviderServer,
  parseAttest,
  provisionChip,
  Swtpm,
  Tpm,
  TpmSigner,
} from '../src/index.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { NEED_SWTPM, tempDir } from './helpers.js';
import { chipJsonOf, chipRecord, fixture, InMemoryLeaseSource, OCR_SAMPLE_TEXT } from './provider-helpers.js';

const CHAIN = 'unc-test-provider-tpm';
const VENDOR = 'acme-tpm';
const MODEL = 'acme-x1';

describe('provider receipts signed by a TPM chip (swtpm, in-memory lease source)', {
  skip: NEED_SWTPM,
}, () => {
  let swtpm: Swtpm;
  let signer: TpmSigner;
  let record: Chip;
  let dir: { path: string; remove(): Promise<void> };
  let provider: ProviderServer;
  let client: ProviderClient;
  const renterSeed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));

  before(async () => {
    swtpm = await Swtpm.start();
    const ca = createVendorCa({
      vendorId: VENDOR,
      notBefore: new Date('2025-01-01T00:00:00Z'),
      notAfter: new Date('2060-01-01T00:00:00Z'),
    });
    const tpm = new Tpm(swtpm.transport());
    await tpm.startup();
    const chip = await provisionChip(tpm, ca, {
      model: MODEL,
      notBefore: new Date('2025-06-01T00:00:00Z'),
      notAfter: new Date('2045-06-01T00:00:00Z'),
    });
    await tpm.close();
    signer = new TpmSigner(
      { kind: 'tcp', host: swtpm.host, port: swtpm.port },
      { vendorId: VENDOR, akCertificate: chip.akCertDer, chain: [ca.intermediate.certificate] },
    );
    // The chip record the chain keeps: what the registration verifier derives from the evidence.
    const message = sha256(new TextEncoder().encode('registration for the provider test'));
    const evidence = await signer.registrationEvidence(message);
    const statement = verifyEvidence(
      evidence,
      {
        vendors: [
          {
            vendorId: VENDOR,
            profile: 'tpm2',
            roots: [ca.root.certificate],
            revokedSerials: [],
            revokedChipIds: [],
          },
        ],
        devSoftEnabled: false,
      },
      BigInt(Date.parse('2026-06-01T00:00:00Z')),
      message,
    );
    record = chipRecord({
      chipId: statement.chipId,
      profile: 'tpm2',
      keyMaterial: fromHex(String(statement.details.signingKey)),
      vendorId: VENDOR,
      modelId: statement.modelId,
    });
    assert.equal(toHex(statement.chipId), toHex(await signer.chipId()));

    const leases = new InMemoryLeaseSource();
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(record.chipId),
      renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
      status: 'active',
    });
    dir = await tempDir('unc-provider-tpm-');
    provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: dir.path,
      logger: silentLogger,
    });
    const url = await provider.start();
    client = new ProviderClient({ endpoint: url, chainId: CHAIN, leaseId, renterSeed, allowHttp: true });
  });

  after(async () => {
    await provider?.stop();
    await signer?.close();
    await swtpm?.dispose();
    await dir?.remove();
  });

  test('an OCR receipt is a TPM quote over the receipt digest and verifies against the chip record', async () => {
    const { job, receipt } = await client.runOcr(fixture('ocr-sample.png'));
    assert.equal(job.ocr?.text, OCR_SAMPLE_TEXT);
    assert.equal(receipt.evidence.type, 'tpm2');
    if (receipt.evidence.type !== 'tpm2') return;
    assert.deepEqual(parseAttest(receipt.evidence.attest).extraData, receiptDigest(receipt.receipt));
    verifyReceiptOffline(job.receipt!.hex, record, CHAIN);
    verifyReceiptOffline(job.receipt!.hex, chipJsonOf(record), CHAIN);
  });

  test('a generic ONNX receipt verifies; tampered TPM receipts do not', async () => {
    const { modelHash } = await client.uploadModel(affineModel());
    const data = Buffer.alloc(16);
    [1, 2, 3, 4].forEach((v, i) => data.writeFloatLE(v, i * 4));
    const { job } = await client.runJob(modelHash, {
      x: { type: 'float32', dims: [1, 4], data: data.toString('base64') },
    });
    verifyReceiptOffline(job.receipt!.hex, record, CHAIN);
    const signed = decodeSignedReceipt(job.receipt!.hex);
    const forged = { ...signed, receipt: { ...signed.receipt, startMs: signed.receipt.startMs - 1n } };
    assert.throws(
      () => verifyReceiptOffline(encodeSignedReceipt(forged), record, CHAIN),
      /extraData [0-9a-f]+ is not the expected message/,
    );
    // A receipt of the TPM chip presented as another chip's fails on the chip id.
    const other = chipRecord({ ...record, chipId: new Uint8Array(32).fill(9) });
    assert.throws(() => verifyReceiptOffline(job.receipt!.hex, other, CHAIN), /another chip/);
  });
});
