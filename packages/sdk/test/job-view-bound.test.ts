/**
 * What `ProviderClient.runJob|runOcr` returns is what the chip signed, not the provider's rendering
 * of it. The receipt signs an OCR job's lines (their hash), not the `text` the provider sends beside
 * them, nor its `receipt.json` or the view's `jobId`: `unc job ocr` printed that `text` as its
 * result, and `-o json` all three, under "receipt verified against the chip key proven on chain".
 * A provider could answer the true lines (a valid receipt) and any text it liked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { contentHash, fromHex, jobIdOf, toHex } from '@unc/core';
import {
  encodeSignedReceipt,
  imageHash,
  JOB_HEADERS,
  jobRequestDigest,
  ocrLinesHash,
  ProviderClient,
  receiptToJson,
} from '../src/index.js';

const CHAIN = 'unc-test-view-bound';
const leaseId = new Uint8Array(randomBytes(32));
const ocrModel = new Uint8Array(32).fill(9);
const lines = [
  { text: 'pay 10 UNC', confidencePpm: 990_000, box: [[0, 0] as [number, number]] },
  { text: 'to alice', confidencePpm: 980_000, box: [[0, 9] as [number, number]] },
];

/** The job id the renter's signed request names, rebuilt from its headers as the provider does. */
function jobIdOfRequest(req: IncomingMessage): Uint8Array {
  const h = (name: string) => String(req.headers[name]);
  const digest = jobRequestDigest({
    chainId: CHAIN,
    leaseId: fromHex(h(JOB_HEADERS.lease), 32),
    method: 'POST',
    path: '/v1/jobs',
    bodyHash: fromHex(h(JOB_HEADERS.bodyHash), 32),
    timestampMs: BigInt(h(JOB_HEADERS.timestamp)),
    nonce: BigInt(h(JOB_HEADERS.nonce)),
  });
  return jobIdOf(leaseId, digest, BigInt(h(JOB_HEADERS.nonce)));
}

describe("a provider's rendering of a signed result", () => {
  let image = new Uint8Array(0);
  // A provider that signs the true lines and sends other text, another job id and a receipt JSON
  // naming another chip beside them.
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const jobId = jobIdOfRequest(req);
      const signed = {
        receipt: {
          chainId: CHAIN,
          leaseId,
          chipId: new Uint8Array(32).fill(1),
          jobId,
          modelHash: ocrModel,
          inputHash: imageHash(image),
          outputHash: ocrLinesHash(lines),
          startMs: 1n,
          durationMs: 2n,
        },
        evidence: { type: 'dev-soft' as const, signature: new Uint8Array(64) },
      };
      const json = { ...receiptToJson(signed), chipId: 'ff'.repeat(32) };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          jobId: 'ee'.repeat(32),
          leaseId: toHex(leaseId),
          model: 'ocr',
          status: 'done',
          ocr: { lines, text: 'pay 10000 UNC\nto mallory' },
          receipt: { hex: encodeSignedReceipt(signed), json },
        }),
      );
    });
  });
  let url = '';
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('is replaced by what the receipt signs: the lines’ text, its job id and receipt JSON', async () => {
    image = new Uint8Array(contentHash(new Uint8Array([1, 2, 3])));
    const client = new ProviderClient({
      endpoint: url,
      chainId: CHAIN,
      leaseId,
      renterSeed: new Uint8Array(randomBytes(32)),
      allowHttp: true,
      timeoutMs: 5_000,
    });
    try {
      const { job, receipt } = await client.runOcr(image, toHex(ocrModel));
      assert.equal(job.ocr?.text, 'pay 10 UNC\nto alice');
      assert.deepEqual(job.ocr?.lines, lines);
      assert.equal(job.jobId, toHex(receipt.receipt.jobId));
      assert.deepEqual(job.receipt?.json, receiptToJson(receipt));
      assert.equal(job.receipt?.json.chipId, '01'.repeat(32));
    } finally {
      client.close();
    }
  });
});
