/**
 * `unc gateway forget-opening <hash>`: a lease opening whose expiry height a hostile node inflated
 * counted against the gateway's budget for ever, and only a hand edit of its database cleared it.
 * The command shows what it forgets, asks (or takes -y), refuses an unknown hash with nothing
 * changed, and removes the opening with its fee not seen included. Run as the real program.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { GatewayStore } from '@unc/gateway';
import { runUnc, tempHome } from './helpers.js';

const OPEN = 'a1'.repeat(32);
const OTHER = 'b2'.repeat(32);

describe('unc gateway forget-opening', () => {
  const home = tempHome();
  after(() => home.cleanup());
  const db = join(home.dir, 'gateway', 'gateway.db');
  mkdirSync(join(home.dir, 'gateway'), { recursive: true });
  const store = new GatewayStore(db);
  // The opening, sent at an inflated height, and another transaction's fee that must stay.
  store.addFee({
    txHash: OPEN,
    kind: 'openLease',
    fee: '2000000000000000',
    atMs: 1,
    expiresAt: '900000000100',
  });
  store.addPendingOpen({
    txHash: OPEN,
    pricePerHour: (10n ** 18n).toString(),
    expiresAt: '900000000100',
    noticeMs: 60_000,
  });
  store.addFee({ txHash: OTHER, kind: 'closeLease', fee: '1000', atMs: 2, expiresAt: '105' });
  store.close();
  const rows = () => {
    const s = new GatewayStore(db, { readonly: true });
    try {
      return { opens: s.pendingOpens().map((o) => o.txHash), fees: s.fees().map((f) => f.txHash) };
    } finally {
      s.close();
    }
  };

  test('refuses an unknown hash, and a malformed one, with a clear error and nothing changed', async () => {
    const unknown = await runUnc(['--home', home.dir, 'gateway', 'forget-opening', 'cc'.repeat(32), '-y']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no pending lease opening c{64}.*it holds: a1a1/);
    const bad = await runUnc(['--home', home.dir, 'gateway', 'forget-opening', 'xyz', '-y']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a transaction hash/);
    assert.deepEqual(rows(), { opens: [OPEN], fees: [OPEN, OTHER] });
  });

  test('asks first: without a terminal and without -y it changes nothing', async () => {
    const r = await runUnc(['--home', home.dir, 'gateway', 'forget-opening', OPEN]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /-y/);
    assert.deepEqual(rows(), { opens: [OPEN], fees: [OPEN, OTHER] });
  });

  test('with -y forgets the opening and its held fee, and nothing else', async () => {
    const r = await runUnc([
      '--home',
      home.dir,
      '-o',
      'json',
      'gateway',
      'forget-opening',
      OPEN.toUpperCase(),
      '-y',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { forgotten: { txHash: string }; heldFee: { fee: string } };
    assert.equal(out.forgotten.txHash, OPEN);
    assert.equal(out.heldFee.fee, '2000000000000000');
    assert.deepEqual(rows(), { opens: [], fees: [OTHER] });
  });
});
