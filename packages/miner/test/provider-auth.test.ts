/**
 * The replay cache on its own: nonces survive a restart through their log file (torn and expired
 * lines are dropped), and each renter key has its own share of the cache.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ed25519PublicKey, toHex } from '@unc/core';
import { signJobRequest } from '@unc/sdk';
import { type HttpError, RequestAuthenticator } from '../src/index.js';
import { tempDir } from './helpers.js';

const CHAIN = 'unc-test-auth';

function headers(seed: Uint8Array, nonce: bigint, now: number) {
  return signJobRequest(
    seed,
    {
      chainId: CHAIN,
      leaseId: new Uint8Array(32).fill(1),
      method: 'GET',
      path: '/v1/health',
      body: new Uint8Array(0),
    },
    { nonce, timestampMs: BigInt(now) },
  );
}

describe('provider replay cache', () => {
  test("attack: a link planted at the compaction's temporary name is never written through", async () => {
    const dir = await tempDir('unc-auth-');
    try {
      const state = join(dir.path, 'state');
      mkdirSync(state);
      const file = join(state, 'used-nonces.log');
      // A file of the provider's own that the link points at: the compaction at start wrote the
      // nonce list through a link at the fixed `used-nonces.log.tmp`, then renamed the link away.
      const victim = join(dir.path, 'victim.txt');
      writeFileSync(victim, 'the operator own file\n');
      symlinkSync(victim, `${file}.tmp`);
      const seed = new Uint8Array(randomBytes(32));
      const now = 1_000_000;
      writeFileSync(file, `${toHex(ed25519PublicKey(seed))}:1 ${now + 5_000}\n`);
      const a = new RequestAuthenticator(CHAIN, { windowMs: 10_000, file, now: () => now });
      a.close();
      assert.equal(readFileSync(victim, 'utf8'), 'the operator own file\n');
      assert.equal(readFileSync(file, 'utf8'), `${toHex(ed25519PublicKey(seed))}:1 ${now + 5_000}\n`);
      assert.deepEqual(readdirSync(state).sort(), ['used-nonces.log', 'used-nonces.log.tmp']);
    } finally {
      await dir.remove();
    }
  });

  test('used nonces are read back after a restart; expired and torn lines are dropped', async () => {
    const dir = await tempDir('unc-auth-');
    try {
      const file = join(dir.path, 'state', 'used-nonces.log');
      let now = 1_000_000;
      const seed = new Uint8Array(randomBytes(32));
      const a = new RequestAuthenticator(CHAIN, { windowMs: 10_000, file, now: () => now });
      a.consume(a.verify('GET', '/v1/health', headers(seed, 1n, now)));
      now += 15_000;
      a.consume(a.verify('GET', '/v1/health', headers(seed, 2n, now)));
      a.close();
      // A crash in the middle of a write leaves a torn last line.
      appendFileSync(file, `${toHex(ed25519PublicKey(seed))}:3 12`);

      now += 6_000; // nonce 1 (kept until 1 000 000 + 20 000) has expired, nonce 2 has not
      const b = new RequestAuthenticator(CHAIN, { windowMs: 10_000, file, now: () => now });
      assert.throws(
        () => b.consume(b.verify('GET', '/v1/health', headers(seed, 2n, now))),
        (e: HttpError) => e.status === 409,
      );
      b.consume(b.verify('GET', '/v1/health', headers(seed, 1n, now)));
      b.consume(b.verify('GET', '/v1/health', headers(seed, 3n, now)));
      b.close();
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(lines.length, 3); // 2 (read back), then 1 and 3
    } finally {
      await dir.remove();
    }
  });

  test('a request stamped a whole window ahead is a replay until its timestamp is stale, to the ms', () => {
    let now = 5_000_000;
    const w = 10_000;
    const seed = new Uint8Array(randomBytes(32));
    const a = new RequestAuthenticator(CHAIN, { windowMs: w, now: () => now });
    // The attacker replays a request whose timestamp is as far ahead as the window allows.
    const stamped = now + w;
    const h = headers(seed, 7n, stamped);
    a.consume(a.verify('GET', '/v1/health', h));
    // Every ms up to the last one where the timestamp is still inside the window: a replay.
    for (const t of [now + 1, now + w, now + 2 * w - 1, now + 2 * w]) {
      now = t;
      const req = a.verify('GET', '/v1/health', h);
      assert.throws(
        () => a.consume(req),
        (e: HttpError) => e.status === 409,
        `accepted again ${t - stamped} ms after its timestamp`,
      );
    }
    // One ms later the timestamp itself is refused.
    now += 1;
    assert.throws(
      () => a.verify('GET', '/v1/health', h),
      (e: HttpError) => e.status === 401,
    );
  });

  test('each renter key has its own share of the cache', () => {
    const now = 5_000_000;
    const a = new RequestAuthenticator(CHAIN, { maxNoncesPerRenter: 3, now: () => now });
    const greedy = new Uint8Array(randomBytes(32));
    const other = new Uint8Array(randomBytes(32));
    for (let n = 1n; n <= 3n; n++) a.consume(a.verify('GET', '/v1/health', headers(greedy, n, now)));
    assert.throws(
      () => a.consume(a.verify('GET', '/v1/health', headers(greedy, 4n, now))),
      (e: HttpError) => e.status === 429,
    );
    a.consume(a.verify('GET', '/v1/health', headers(other, 1n, now)));
    assert.equal(a.noncesOf(toHex(ed25519PublicKey(other))), 1);
  });
});
