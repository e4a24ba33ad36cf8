/**
 * `unc job` against a real `unc dev` chain and a real `unc miner start --provider-port` agent:
 * receipts signed by the agent's registered dev chip are checked against the chip's record as the
 * node serves it, and a lease opened with `unc market` gets OCR jobs from the agent's provider API
 * (which reads the lease over RPC) until the renter closes it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type JobReceipt, receiptDigest, toHex } from '@unc/core';
import { DevSoftSigner, readProviderCertificate } from '@unc/miner';
import { DEV_MODELS, devChipKey } from '@unc/node';
import { type ChipJson, encodeSignedReceipt, ProviderClient, UncClient } from '@unc/sdk';
import { type DevNode, runUnc, startDev, tempHome, UNC, waitForProvenChips } from './helpers.js';

const SAMPLE = fileURLToPath(new URL('../../../miner/test/fixtures/ocr-sample.png', import.meta.url));

describe('unc job against unc dev and unc miner start --provider-port', () => {
  const home = tempHome();
  let dev: DevNode;
  let miner: ChildProcess | null = null;
  let providerUrl: string;
  let client: UncClient;
  let chainId: string;
  // What `unc miner start --dev-chips 1` drives: dev chip 0.
  const chip = new DevSoftSigner(devChipKey(0).seed, DEV_MODELS[0].modelId, 'dev-chip-0');

  before(async () => {
    dev = await startDev(home.dir, ['--block-time', '250', '--chips', '0']);
    client = new UncClient(dev.url);
    chainId = (await client.status()).chainId;
    miner = spawn(
      process.execPath,
      [UNC, 'miner', 'start', '--home', home.dir, '--from', 'dev9', '--dev-chips', '1'].concat([
        '--provider-port',
        '0',
        '--output',
        'json',
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
    );
    let out = '';
    miner.stdout!.on('data', (d) => (out += d));
    miner.stderr!.on('data', (d) => (out += d));
    providerUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`unc miner start printed no provider URL:\n${out}`)),
        60_000,
      );
      miner!.stdout!.on('data', () => {
        // The provider API is https with the agent's own certificate (made on first start).
        const m = /"provider": "(https:\/\/127\.0\.0\.1:\d+)"/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      miner!.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`unc miner start exited with ${code}:\n${out}`));
      });
    });
    // The agent registers its chip in its first blocks.
    const id = toHex(await chip.chipId());
    // Generous: the agent's start and its registration share a loaded machine's cores.
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        await client.call<ChipJson>('unc_getChip', [id]);
        break;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(
            `chip ${id.slice(0, 16)} not registered in 120 s: ${(err as Error).message}\n${out}`,
          );
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    // Only a chip proven online is rented: wait for the agent's first answered challenge.
    await waitForProvenChips(dev.url, [id]);
  });
  after(async () => {
    if (miner && miner.exitCode === null && miner.signalCode === null) {
      const exited = new Promise((r) => miner!.once('exit', r));
      miner.kill('SIGTERM');
      await exited;
    }
    await dev?.stop();
    home.cleanup();
  });

  async function signedReceipt(patch: Partial<JobReceipt> = {}): Promise<string> {
    const receipt: JobReceipt = {
      chainId,
      leaseId: new Uint8Array(randomBytes(32)),
      chipId: await chip.chipId(),
      jobId: new Uint8Array(randomBytes(32)),
      modelHash: new Uint8Array(32).fill(1),
      inputHash: new Uint8Array(32).fill(2),
      outputHash: new Uint8Array(32).fill(3),
      startMs: BigInt(Date.now()),
      durationMs: 12n,
    };
    const evidence = await chip.answer(receiptDigest(receipt));
    return encodeSignedReceipt({ receipt: { ...receipt, ...patch }, evidence });
  }

  test('unc job verify accepts a receipt signed by the registered chip (file or hex)', async () => {
    const hex = await signedReceipt();
    const file = join(home.dir, 'receipt.hex');
    writeFileSync(file, `${hex}\n`);
    const byFile = await runUnc(['job', 'verify', file, '--home', home.dir, '--output', 'json']);
    assert.equal(byFile.code, 0, byFile.stderr);
    assert.equal(JSON.parse(byFile.stdout).ok, true);
    const byHex = await runUnc(['job', 'verify', hex, '--home', home.dir]);
    assert.equal(byHex.code, 0, byHex.stderr);
    assert.match(byHex.stdout, /^ok: signed by chip [0-9a-f]{64}/);
    // --prove proves the receipt's lease too (its chip must be the signer): this receipt's lease
    // is made up, and the chain proves it absent. A real lease's receipt is proven below.
    const proven = await runUnc(['job', 'verify', hex, '--prove', '--home', home.dir, '--output', 'json']);
    assert.equal(proven.code, 1, proven.stdout);
    assert.match(proven.stderr, /the chain knows no lease [0-9a-f]{64} \(proven absent\).*\[NO_LEASE\]/);
  });

  test('unc job verify --chip --chain-id checks against a saved chip record and asks no node', async () => {
    const hex = await signedReceipt();
    const id = toHex(await chip.chipId());
    const saved = await runUnc(['chip', 'show', id.slice(0, 16), '--home', home.dir, '-o', 'json']);
    assert.equal(saved.code, 0, saved.stderr);
    const chipFile = join(home.dir, 'chip.json');
    writeFileSync(chipFile, saved.stdout);
    // The node given is unreachable: the check cannot have asked it.
    const offline = ['--node', 'http://127.0.0.1:9', '--home', home.dir, '--chip', chipFile];
    const ok = await runUnc(['job', 'verify', hex, ...offline, '--chain-id', chainId, '-o', 'json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(JSON.parse(ok.stdout).checkedAgainst, /offline: no node was asked/);
    const tampered = await runUnc([
      'job',
      'verify',
      await signedReceipt({ durationMs: 13n }),
      ...offline,
      '--chain-id',
      chainId,
    ]);
    assert.equal(tampered.code, 1);
    assert.match(tampered.stderr, /receipt does not verify/);
    const otherChain = await runUnc(['job', 'verify', hex, ...offline, '--chain-id', 'unc-other-1']);
    assert.equal(otherChain.code, 1);
    const alone = await runUnc(['job', 'verify', hex, ...offline]);
    assert.match(alone.stderr, /--chip and --chain-id go together/);
  });

  test('unc job verify rejects a tampered receipt, saying why, with exit 1', async () => {
    const tampered = await signedReceipt({ durationMs: 13n });
    const res = await runUnc(['job', 'verify', tampered, '--home', home.dir]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^error: receipt does not verify: .*not signed by the chip/);
    assert.equal(res.stderr.trim().split('\n').length, 1);
    const junk = await runUnc(['job', 'verify', 'zz', '--home', home.dir]);
    assert.equal(junk.code, 1);
    assert.match(junk.stderr, /not a signed receipt/);
  });

  test('a lease opened on chain: unc job ocr through the provider API, refused once the lease is closed', async () => {
    const url = providerUrl;
    const fingerprint = readProviderCertificate(join(home.dir, 'tls'))!.fingerprint;
    const pinned = new ProviderClient({
      endpoint: url,
      chainId,
      leaseId: new Uint8Array(32),
      renterSeed: new Uint8Array(32),
      tlsFingerprints: [fingerprint],
    });
    const health = await pinned.health();
    pinned.close();
    assert.deepEqual(health.chips, [toHex(await chip.chipId())]);
    const chipId = toHex(await chip.chipId());
    const json = async (args: string[]) => {
      const r = await runUnc([...args, '--home', home.dir, '--output', 'json', '-y']);
      assert.equal(r.code, 0, `unc ${args.join(' ')}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    // dev9 is the dev miner's account: it owns the dev chips.
    const offer = await json(
      ['market', 'offer', 'create', '--from', 'dev9', '--chips', chipId, '--price', '1'].concat([
        '--min-hours',
        '1',
        '--max-hours',
        '24',
        '--notice',
        '10m',
        '--endpoint',
        url,
      ]),
    );
    // unc market offer create pinned the certificate the agent made in this home.
    assert.deepEqual((await client.getOffer(offer.offerId)).tlsFingerprints, [fingerprint]);
    const lease = await json(['market', 'lease', offer.offerId, '--from', 'dev3', '--hours', '2']);
    assert.equal(lease.chipId, chipId);

    const out = join(home.dir, 'ocr-receipt.hex');
    const res = await runUnc(
      ['job', 'ocr', SAMPLE, '--lease', lease.leaseId, '--from', 'dev3', '--receipt-out', out].concat([
        '--home',
        home.dir,
      ]),
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^UtilityNet 2026 rental receipt\n/);
    const ok = await runUnc(['job', 'verify', out, '--home', home.dir, '--output', 'json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).receipt.leaseId, lease.leaseId);
    // --prove: the chip key and the lease's chip from Merkle proofs against a validator-signed header.
    const provenOk = await runUnc(['job', 'verify', out, '--prove', '--home', home.dir, '--output', 'json']);
    assert.equal(provenOk.code, 0, provenOk.stderr);
    assert.equal(JSON.parse(provenOk.stdout).ok, true);
    assert.match(JSON.parse(provenOk.stdout).checkedAgainst, /proven against validator-signed headers/);
    // The same through the light client: lease (endpoint, TLS pin, status) and chip key proven.
    const proven = await runUnc(
      ['job', 'ocr', SAMPLE, '--lease', lease.leaseId, '--from', 'dev3', '--prove'].concat([
        '--home',
        home.dir,
      ]),
    );
    assert.equal(proven.code, 0, proven.stderr);
    assert.match(proven.stdout, /receipt verified against the chip key proven on chain/);

    // Another key than the lease's renter: refused by the CLI, and by the provider itself.
    const other = await runUnc([
      'job',
      'ocr',
      SAMPLE,
      '--lease',
      lease.leaseId,
      '--from',
      'dev4',
      '--home',
      home.dir,
    ]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /not the renter of lease/);
    const direct = await runUnc(
      ['job', 'ocr', SAMPLE, '--lease', lease.leaseId, '--from', 'dev4', '--endpoint', url].concat([
        '--home',
        home.dir,
      ]),
    );
    assert.equal(direct.code, 1);
    assert.match(direct.stderr, /not the renter of lease/);

    // The renter closes the lease: no more jobs.
    await json(['market', 'lease', 'close', lease.leaseId, '--from', 'dev3']);
    const closed = await runUnc(
      ['job', 'ocr', SAMPLE, '--lease', lease.leaseId, '--from', 'dev3', '--endpoint', url].concat([
        '--home',
        home.dir,
      ]),
    );
    assert.equal(closed.code, 1);
    assert.match(closed.stderr, /closed/);
    const provenClosed = await runUnc(
      ['job', 'ocr', SAMPLE, '--lease', lease.leaseId, '--from', 'dev3', '--prove'].concat([
        '--home',
        home.dir,
      ]),
    );
    assert.equal(provenClosed.code, 1);
    assert.match(provenClosed.stderr, /LEASE_NOT_ACTIVE|is closed/);
  });
});
