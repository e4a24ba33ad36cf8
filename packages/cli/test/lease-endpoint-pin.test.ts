/**
 * `unc job` sends a lease's inputs to the endpoint the node reports for it. A node the user does not
 * run could name its own server (and a chip key of its own, so its answers "verify"). The endpoint
 * the user confirmed when opening the lease is in the terms the chain checked, so it is pinned in
 * the home and a node reporting another is refused before anything is sent.
 */
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { toHex } from '@unc/core';
import { devKey } from '@unc/node';
import { Keyring } from '../src/keyring.js';
import { leasePin, pinLease } from '../src/lease-pins.js';
import { runUnc, tempHome } from './helpers.js';

const CHAIN = 'unc-dev-lease-pin';
const LEASE_ID = 'ef'.repeat(32);
const CONFIRMED = 'https://provider.invalid';
/** A lease id the node invents that starts as LEASE_ID does (its 16-digit prefix, as lists show it). */
const LOOKALIKE_ID = `${'ef'.repeat(8)}${'aa'.repeat(24)}`;

const pinOf = (leaseId: string) => ({
  leaseId,
  chainId: CHAIN,
  offerId: 'ab'.repeat(32),
  endpoint: CONFIRMED,
  hash: '11'.repeat(32),
});

function listen(server: Server): Promise<string> {
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

/** A node that reports lease LEASE_ID at `endpoint` (a dev chain, so plain http passes). */
function hostileNode(endpoint: () => string, chainId: () => string): Server {
  const answers: Record<string, () => unknown> = {
    unc_status: () => ({ chainId: chainId(), height: 10, timeMs: 0 }),
    unc_getParams: () => ({ minFeePerByte: '1', minFeePerAction: '1', devChain: true }),
    // Asked to resolve a prefix, it lists its look-alike and leaves the lease this home opened out.
    unc_getOffers: () => [],
    unc_getLeases: () => [{ id: LOOKALIKE_ID }],
    unc_getLease: () => ({
      id: LEASE_ID,
      chipId: 'cd'.repeat(32),
      renterPublicKey: toHex(devKey(2).publicKey),
      endpoint: endpoint(),
      tlsFingerprints: [],
      status: 'active',
    }),
  };
  return createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const { id, method } = JSON.parse(body) as { id: number; method: string };
      const answer = answers[method];
      const reply = answer
        ? { jsonrpc: '2.0', id, result: answer() }
        : { jsonrpc: '2.0', id, error: { code: -32601, message: `no ${method}` } };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
}

describe('unc job sends only to the endpoint the lease was opened on', () => {
  const home = tempHome();
  let attackerHits = 0;
  const attacker = createServer((_req, res) => {
    attackerHits++;
    res.writeHead(500).end();
  });
  let attackerUrl = '';
  let nodeChain = CHAIN;
  const node = hostileNode(
    () => attackerUrl,
    () => nodeChain,
  );
  let nodeUrl = '';
  before(async () => {
    attackerUrl = await listen(attacker);
    nodeUrl = await listen(node);
    new Keyring(home.dir).addTest('renter', devKey(2).seed, CHAIN);
    // A keystore key unlocks on any chain id: only the lease record stands in the way.
    new Keyring(home.dir).addEncrypted('renter-enc', devKey(2).seed, 'pw');
    writeFileSync(join(home.dir, 'pw'), 'pw\n', { mode: 0o600 });
    writeFileSync(join(home.dir, 'model.onnx'), 'not a model');
    writeFileSync(join(home.dir, 'in.json'), '{}');
  });
  after(() => {
    attacker.close();
    node.close();
    home.cleanup();
  });
  const run = (...extra: string[]) => runLease(LEASE_ID, ...extra);
  const runLease = (lease: string, ...extra: string[]) =>
    runUnc([
      '--home',
      home.dir,
      '--node',
      nodeUrl,
      '-o',
      'json',
      'job',
      'run',
      '--lease',
      lease,
      '--from',
      'renter',
      '--model',
      join(home.dir, 'model.onnx'),
      '--input',
      join(home.dir, 'in.json'),
      ...extra,
    ]);

  test('a lease this home opened: another endpoint from the node is refused, nothing sent', async () => {
    pinLease(home.dir, pinOf(LEASE_ID));
    const r = await run();
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /ENDPOINT_CHANGED/);
    assert.equal(attackerHits, 0, 'the node-reported endpoint got the job');
  });

  test('a prefix of a lease this home opened never resolves to a look-alike only the node lists', async () => {
    pinLease(home.dir, pinOf(LEASE_ID));
    // The form `unc market leases` prints: 16 digits and "…". The node left the pinned lease out of
    // its lists, so the look-alike (no record, the node's endpoint) was the one match.
    const r = await runLease(`${LEASE_ID.slice(0, 16)}…`);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /AMBIGUOUS_ID/);
    assert.equal(attackerHits, 0, 'a prefix skipped the record: the node-reported endpoint got the job');
  });

  test('a node naming another chain for a lease this home opened is refused, nothing sent', async () => {
    nodeChain = 'unc-elsewhere';
    try {
      const r = await run('--from', 'renter-enc', '--password-file', join(home.dir, 'pw'));
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /CHAIN_CHANGED/);
      assert.equal(attackerHits, 0, 'the node skipped the record by naming another chain');
    } finally {
      nodeChain = CHAIN;
    }
  });

  test('a lease id the node names at opening never replaces another lease’s record', () => {
    const other = { ...pinOf(LEASE_ID), offerId: 'cc'.repeat(32), endpoint: 'https://attacker.invalid' };
    assert.throws(() => pinLease(home.dir, { ...other, hash: '22'.repeat(32) }), {
      code: 'LEASE_PIN_TAKEN',
    });
    assert.equal(leasePin(home.dir, LEASE_ID, CHAIN)?.endpoint, CONFIRMED);
    // The same terms again (a retried command) are no conflict.
    pinLease(home.dir, pinOf(LEASE_ID));
  });

  test('the pin is the lease file of this home, 0600, and bound to its chain', () => {
    const pin = leasePin(home.dir, LEASE_ID, CHAIN);
    assert.equal(pin?.endpoint, CONFIRMED);
    assert.throws(() => leasePin(home.dir, LEASE_ID, 'unc-other'), { code: 'CHAIN_CHANGED' });
    assert.equal(leasePin(home.dir, 'fe'.repeat(32), 'unc-other'), undefined);
    assert.equal(statSync(join(home.dir, 'leases', `${LEASE_ID}.json`)).mode & 0o777, 0o600);
    assert.equal(statSync(join(home.dir, 'leases')).mode & 0o777, 0o700);
  });
});
