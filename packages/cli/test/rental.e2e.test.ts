/**
 * Renting from `unc dev` the way a renter would (issue 6): the dev miner offers its chips on the
 * market by itself; a renter leases a software chip and a TPM chip (swtpm), runs the OCR job on
 * each through the provider API, and verifies the chip-signed receipts against the chain. Bad
 * requests to the real provider are refused; when the TPM chip stops answering (its swtpm process
 * is killed) the time it missed is refunded at the next epoch end; a closed lease gets no job.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fromHex, utf8 } from '@unc/core';
import { devKey } from '@unc/node';
import { type ChipJson, type LeaseJson, type OfferJson, signJobRequest, UncClient } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import { type DevNode, runUnc, startDev, tempHome } from './helpers.js';

const SAMPLE = fileURLToPath(new URL('../../../miner/test/fixtures/ocr-sample.png', import.meta.url));
const EXPECTED_TEXT = 'UtilityNet 2026 rental receipt';
const RENTER = 'dev1';

const until = <T>(what: string, ms: number, probe: () => Promise<T | null>) =>
  waitUntil(what, probe, { timeoutMs: ms, intervalMs: 300 });

describe('renting a software chip and a TPM chip from unc dev', { timeout: 240_000 }, () => {
  const home = tempHome();
  let dev: DevNode;
  let client: UncClient;
  let chainId: string;
  let offer: OfferJson;
  let swtpmPid: number;
  const leases: Record<'dev-soft' | 'tpm2', LeaseJson | null> = { 'dev-soft': null, tpm2: null };

  const json = async (args: string[]) => {
    const r = await runUnc([...args, '--home', home.dir, '--output', 'json', '-y']);
    assert.equal(r.code, 0, `unc ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    dev = await startDev(
      home.dir,
      ['--block-time', '250', '--epoch-blocks', '24'].concat(['--chips', '1', '--tpm-chips', '1']),
    );
    client = new UncClient(dev.url);
    chainId = (await client.status()).chainId;
    const pid = /swtpm chips \(pids (\d+)\)/.exec(dev.output());
    assert.ok(pid, `unc dev printed no swtpm pid:\n${dev.output()}`);
    swtpmPid = Number(pid[1]);
    // The dev miner registers both chips, then puts them on the market at its provider URL; they are
    // available (rentable) once each has answered its first challenge, in the epoch after registration.
    offer = await until('the dev miner to offer its two chips', 120_000, async () => {
      const open = (await client.getOffers()).filter((o) => o.status === 'open' && o.chips.length === 2);
      return open.length === 1 && open[0]!.chips.every((c) => c.available) ? open[0]! : null;
    });
  });

  after(async () => {
    await dev?.stop();
    home.cleanup();
  });

  test('the offer lists both chips at the provider endpoint unc dev printed', async () => {
    const printed = /Provider\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(dev.output());
    assert.ok(printed);
    assert.equal(offer.endpoint, printed[1]);
    const listed = await json(['market', 'offers']);
    assert.ok(listed.some((o: OfferJson) => o.id === offer.id));
  });

  test('a lease on each chip; the OCR job reads the image and the receipt verifies against the chain', async () => {
    for (const c of offer.chips) {
      const chip = await client.call<ChipJson>('unc_getChip', [c.chipId]);
      const profile = chip.profile as 'dev-soft' | 'tpm2';
      const opened = await json([
        'market',
        'lease',
        offer.id,
        '--hours',
        '1',
        '--chip',
        c.chipId,
        '--from',
        RENTER,
      ]);
      assert.equal(opened.chipId, c.chipId);
      leases[profile] = await client.getLease(opened.leaseId);

      const receiptFile = join(home.dir, `receipt-${profile}.hex`);
      const res = await runUnc(
        [
          'job',
          'ocr',
          SAMPLE,
          '--lease',
          opened.leaseId,
          '--from',
          RENTER,
          '--receipt-out',
          receiptFile,
          '--request-out',
          join(home.dir, `request-${profile}.hex`),
        ].concat(['--home', home.dir]),
      );
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.split('\n')[0], EXPECTED_TEXT);
      const verified = await json(['job', 'verify', receiptFile]);
      assert.equal(verified.receipt.leaseId, opened.leaseId);
      assert.equal(verified.receipt.chipId, c.chipId);
    }
    assert.ok(leases['dev-soft'] && leases.tpm2, 'one lease per profile');
  });

  test("the renter rates a job with its receipt and records a dispute: the provider's record shows both", async () => {
    const lease = leases['dev-soft'];
    assert.ok(lease);
    const rated = await json([
      'market',
      'rate',
      join(home.dir, 'receipt-dev-soft.hex'),
      '--rating',
      '5',
      '--from',
      RENTER,
    ]);
    assert.equal(rated.rating, 5);
    // The same receipt twice is refused, with one line saying why.
    const again = await runUnc(
      ['market', 'rate', join(home.dir, 'receipt-dev-soft.hex'), '--rating', '1', '--from', RENTER].concat([
        '--home',
        home.dir,
      ]),
    );
    assert.equal(again.code, 1);
    assert.equal(again.stderr.trim().split('\n').length, 1, again.stderr);
    // A dispute carries a request the renter signed (saved by `unc job … --request-out`).
    const disputed = await json([
      'market',
      'dispute',
      join(home.dir, 'request-dev-soft.hex'),
      '--reason',
      'no answer in 60 s',
      '--from',
      RENTER,
    ]);
    assert.equal(disputed.leaseId, lease.id);
    const record = await json(['market', 'provider', lease.provider]);
    assert.equal(record.jobsReceipted, 1);
    assert.equal(record.ratingsCount, 1);
    assert.equal(record.disputes, 1);
  });

  test('the provider refuses another key, a replayed request and an oversized body', async () => {
    const lease = leases['dev-soft'];
    assert.ok(lease);
    const body = utf8(JSON.stringify({ model: 'ocr', image: '' }));
    const send = (headers: Record<string, string>, payload: Uint8Array = body) =>
      fetch(`${offer.endpoint}/v1/jobs`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: payload,
      });
    const req = (payload: Uint8Array) => ({
      chainId,
      leaseId: fromHex(lease.id, 32),
      method: 'POST',
      path: '/v1/jobs',
      body: payload,
    });

    const stranger = await send(signJobRequest(devKey(2).seed, req(body)));
    assert.equal(stranger.status, 403);

    // A valid request with an empty image: refused for its content, but its nonce is now spent.
    const headers = signJobRequest(devKey(1).seed, req(body));
    const first = await send(headers);
    assert.equal(first.status, 400);
    const replay = await send(headers);
    assert.equal(replay.status, 409);

    const huge = new Uint8Array(64 * 1024 * 1024).fill(0x20);
    const oversized = await send(signJobRequest(devKey(1).seed, req(huge)), huge).catch((err: Error) => ({
      status: `connection closed: ${err.message}`,
    }));
    assert.ok(
      oversized.status === 413 || String(oversized.status).startsWith('connection closed'),
      `oversized body got ${oversized.status}`,
    );
  });

  test('the TPM chip stops answering: its missed time is refunded, the software chip is paid in full', async () => {
    process.kill(swtpmPid, 'SIGKILL');
    const tpmLease = leases.tpm2!;
    const refunded = await until('a refund on the TPM chip lease', 90_000, async () => {
      const l = await client.getLease(tpmLease.id);
      return BigInt(l.refunded) > 0n ? l : null;
    });
    assert.ok(refunded.slotsMissed > 0);
    const soft = await client.getLease(leases['dev-soft']!.id);
    assert.ok(BigInt(soft.paid) > 0n);
    assert.equal(soft.refunded, '0');
    for (const l of [refunded, soft]) {
      assert.equal(BigInt(l.deposit), BigInt(l.paid) + BigInt(l.refunded) + BigInt(l.remaining), l.id);
    }
  });

  test('the renter closes a lease: the remainder comes back and no job is accepted after', async () => {
    const lease = leases['dev-soft']!;
    const before = BigInt((await client.getAccount(lease.renter)).balance);
    await json(['market', 'lease', 'close', lease.id, '--from', RENTER]);
    assert.equal((await client.getLease(lease.id)).status, 'closed');
    // A challenge still open at the close holds the last period's cost on the lease until its
    // window closes (docs/jobs.md "How a lease is paid"): within W + 1 blocks it is decided.
    const closed = await until('the held last period to be decided', 60_000, async () => {
      const l = await client.getLease(lease.id);
      return l.remaining === '0' ? l : null;
    });
    assert.equal(BigInt(closed.paid) + BigInt(closed.refunded), BigInt(closed.deposit));
    assert.ok(BigInt((await client.getAccount(lease.renter)).balance) > before);
    const res = await runUnc([
      'job',
      'ocr',
      SAMPLE,
      '--lease',
      lease.id,
      '--from',
      RENTER,
      '--home',
      home.dir,
    ]);
    assert.equal(res.code, 1);
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
    assert.match(res.stderr, /closed/);
  });

  test('a pay-as-you-go lease whose escrow runs out is closed at the next epoch end; no job is accepted after', async () => {
    const chipId = leases['dev-soft']!.chipId;
    // 0.01 UNC at 2 UNC/h covers 18 s; epochs are 6 s here.
    const opened = await json(
      ['market', 'lease', offer.id, '--hours', '1', '--chip', chipId, '--deposit', '0.01'].concat([
        '--from',
        RENTER,
      ]),
    );
    await until('the escrow to run out', 90_000, async () => {
      const l = await client.getLease(opened.leaseId);
      return l.status === 'closed' ? l : null;
    });
    // The last period's cost stays held on the closed lease until its open challenges are decided.
    const closed = await until('the held last period to be decided', 60_000, async () => {
      const l = await client.getLease(opened.leaseId);
      return l.remaining === '0' ? l : null;
    });
    assert.equal(closed.closedReason, 'escrowExhausted');
    assert.equal(BigInt(closed.paid) + BigInt(closed.refunded), BigInt(closed.deposit));
    const res = await runUnc([
      'job',
      'ocr',
      SAMPLE,
      '--lease',
      opened.leaseId,
      '--from',
      RENTER,
      '--home',
      home.dir,
    ]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /closed/);
  });
});
