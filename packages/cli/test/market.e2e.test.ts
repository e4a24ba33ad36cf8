import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseUnc } from '@unc/core';
import type { LeaseJson, OfferJson, ProviderRecordJson } from '@unc/sdk';
import { type DevNode, runUnc, startDev, tempHome, waitForProvenChips } from './helpers.js';

const PROVIDER = 'unc15kptc8392w9snraccn5ztp33fnsmgse5647nvy'; // dev9, owner of the dev chips
const RENTER = 'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34'; // dev1

describe('unc market end to end', () => {
  const home = tempHome();
  let dev: DevNode;
  const unc = async (...args: string[]) => {
    const r = await runUnc([...args, '--home', home.dir, '-y']);
    return r;
  };
  /**
   * dev9 also signs the dev miner's heartbeats, so a transaction of ours can lose its nonce to one;
   * such a race (and only that) is retried.
   */
  const asProvider = async (...args: string[]) => {
    for (let attempt = 1; ; attempt++) {
      const r = await unc(...args);
      if (r.code === 0 || attempt === 3 || !/NONCE|not included after/.test(r.stderr)) return r;
    }
  };
  const json = async <T>(...args: string[]): Promise<T> => {
    const r = args.includes('dev9')
      ? await asProvider(...args, '--output', 'json')
      : await unc(...args, '--output', 'json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    // This test makes its own offers: the dev miner keeps its chips off the market.
    dev = await startDev(home.dir, ['--block-time', '250', '--no-offer']);
  });
  after(async () => {
    await dev?.stop();
    home.cleanup();
  });

  test('offer, lease, show, top up, close, and the provider record', async () => {
    const chips = await json<{ chipId: string }[]>('chip', 'list');
    assert.ok(chips.length >= 2, 'unc dev registers dev chips');
    const created = await json<{ offerId: string }>(
      'market',
      'offer',
      'create',
      '--from',
      'dev9',
      '--chips',
      chips
        .slice(0, 2)
        .map((c) => c.chipId)
        .join(','),
      '--price',
      '3.6',
      '--min-hours',
      '1',
      '--max-hours',
      '8',
      '--notice',
      '10m',
      '--endpoint',
      'http://127.0.0.1:7070/jobs',
      '--memory',
      '80GiB',
      '--region',
      'eu-west',
      '--runtimes',
      'onnx',
    );
    const offers = await json<OfferJson[]>('market', 'offers');
    assert.equal(offers.length, 1);
    assert.equal(offers[0]?.id, created.offerId);
    assert.equal(offers[0]?.price, parseUnc('3.6').toString());
    assert.equal(offers[0]?.attributes.memoryMiB, 80 * 1024);
    const text = await unc('market', 'offers');
    assert.match(text.stdout, /3\.6 UNC\/h/);

    // Without a terminal, consent is -y: asked for nothing, the command stops at once and sends nothing.
    const unconfirmed = await runUnc([
      'market',
      'lease',
      created.offerId,
      '--hours',
      '2',
      '--from',
      'dev1',
      '--home',
      home.dir,
    ]);
    assert.equal(unconfirmed.code, 1);
    assert.match(unconfirmed.stderr, /CONFIRMATION_REQUIRED|pass -y/);
    // Pre-flight: hours outside the offer's range are refused before anything is signed.
    const tooLong = await unc('market', 'lease', created.offerId, '--hours', '9', '--from', 'dev1');
    assert.equal(tooLong.code, 1);
    assert.match(tooLong.stderr, /rents for 1…8 hours, not 9/);

    // Only chips proven online are rented: wait for the dev miner's first answers to their challenges.
    await waitForProvenChips(
      dev.url,
      chips.slice(0, 2).map((c) => c.chipId),
    );
    // Opening a lease prints its id alone; the offer is named by the 16 digits the text output shows.
    const opened = await unc(
      'market',
      'lease',
      `${created.offerId.slice(0, 16)}…`,
      '--hours',
      '2',
      '--from',
      'dev1',
    );
    assert.equal(opened.code, 0, opened.stderr);
    const leaseId = opened.stdout.trim();
    assert.match(leaseId, /^[0-9a-f]{64}$/);

    const lease = await json<LeaseJson>('market', 'lease', 'show', leaseId.slice(0, 10));
    assert.equal(lease.renter, RENTER);
    assert.equal(lease.provider, PROVIDER);
    assert.equal(lease.deposit, parseUnc('7.2').toString());
    assert.equal(lease.status, 'active');
    assert.equal(lease.endpoint, 'http://127.0.0.1:7070/jobs');

    const topped = await unc('market', 'lease', 'topup', leaseId.slice(0, 8), '0.5', '--from', 'dev1');
    assert.equal(topped.code, 0, topped.stderr);
    assert.match(topped.stdout, /topped up by 0\.5 UNC/);

    const leases = await json<LeaseJson[]>('market', 'leases', '--renter', 'dev1');
    assert.deepEqual(
      leases.map((l) => l.id),
      [leaseId],
    );

    const closed = await unc('market', 'lease', 'close', leaseId, '--from', 'dev1');
    assert.equal(closed.code, 0, closed.stderr);
    const after = await json<LeaseJson>('market', 'lease', 'show', leaseId);
    assert.equal(after.status, 'closed');
    assert.equal(after.closedReason, 'renterClosed');
    assert.equal(BigInt(after.paid) + BigInt(after.refunded), parseUnc('7.7'));

    const record = await json<ProviderRecordJson>('market', 'provider', 'dev9');
    assert.equal(record.leases, 1);
    assert.equal(record.earnings, after.paid);

    const closeOffer = await asProvider('market', 'offer', 'close', created.offerId, '--from', 'dev9');
    assert.equal(closeOffer.code, 0, closeOffer.stderr);
    assert.deepEqual(await json<OfferJson[]>('market', 'offers'), []);
    // A closed offer (found by prefix among dev9's) is refused before signing.
    const late = await unc('market', 'lease', created.offerId.slice(0, 12), '--hours', '1', '--from', 'dev1');
    assert.equal(late.code, 1);
    assert.match(late.stderr, /takes no new leases/);
  });

  test('bad input gets one clear line on stderr and exit 1', async () => {
    const cases: [string[], RegExp][] = [
      [['market', 'lease', 'abc', '--hours', '1', '--from', 'dev1'], /invalid offer id/],
      [['market', 'lease', '11'.repeat(32), '--from', 'dev1'], /--hours/],
      [['market', 'lease', 'topup', '11'.repeat(32), '1'], /--from/],
      [['market', 'leases'], /exactly one of --renter/],
      [['market', 'provider', 'unc1nope'], /address/i],
      [['market', 'lease', 'show', '22'.repeat(32)], /not found/],
      [
        [
          'market',
          'offer',
          'create',
          '--from',
          'dev9',
          '--chips',
          '33'.repeat(32),
          '--price',
          '1',
          '--min-hours',
          '1',
          '--max-hours',
          '2',
          '--notice',
          'soon',
          '--endpoint',
          'http://x',
        ],
        /invalid duration/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const r = await unc(...args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});
