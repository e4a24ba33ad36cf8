/**
 * Crash audit: the provider appends each used nonce to used-nonces.log before serving the request.
 * Written only to the page cache, a power loss forgot it, and the request (captured on the way, or
 * kept by a relay) was new again after the reboot for the rest of its 2 × window. A test cannot cut
 * the power: here the log's appends stay in a page cache of the test's own (node:fs wrapped, the
 * ESM bindings synced) that reaches the file only through an fsync or fdatasync of its descriptor,
 * and a close without one is the power loss.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { ed25519PublicKey, toHex } from '@unc/core';
import { silentLogger } from '@unc/node';
import { signJobRequest } from '@unc/sdk';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { affineModel } from './fixtures/make-fixtures.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource } from './provider-helpers.js';

const CHAIN = 'unc-test-aud-crash-nonces';

type Cb = (err: NodeJS.ErrnoException | null) => void;

/** Holds the appends to `used-nonces.log` until their descriptor is synced; returns the undo. */
function pageCache(): { lost: () => number; restore: () => void } {
  const real = {
    openSync: fs.openSync,
    writeSync: fs.writeSync,
    closeSync: fs.closeSync,
    fsync: fs.fsync,
    fsyncSync: fs.fsyncSync,
    fdatasync: fs.fdatasync,
    fdatasyncSync: fs.fdatasyncSync,
  };
  const pending = new Map<number, string[]>();
  let lost = 0;
  const flush = (fd: number) => {
    for (const data of pending.get(fd)?.splice(0) ?? []) real.writeSync(fd, data);
  };
  const f = fs as unknown as Record<string, unknown>;
  f.openSync = (path: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode) => {
    const fd = real.openSync(path, flags as fs.OpenMode, mode);
    if (String(path).endsWith('used-nonces.log') && flags === 'a') pending.set(fd, []);
    return fd;
  };
  f.writeSync = (fd: number, data: unknown, ...rest: unknown[]) => {
    const held = pending.get(fd);
    if (!held) return (real.writeSync as (...a: unknown[]) => number)(fd, data, ...rest);
    held.push(String(data));
    return Buffer.byteLength(String(data));
  };
  f.closeSync = (fd: number) => {
    lost += pending.get(fd)?.length ?? 0;
    pending.delete(fd);
    real.closeSync(fd);
  };
  f.fsyncSync = (fd: number) => {
    flush(fd);
    real.fsyncSync(fd);
  };
  f.fdatasyncSync = (fd: number) => {
    flush(fd);
    real.fdatasyncSync(fd);
  };
  f.fsync = (fd: number, cb: Cb) => {
    flush(fd);
    real.fsync(fd, cb);
  };
  f.fdatasync = (fd: number, cb: Cb) => {
    flush(fd);
    real.fdatasync(fd, cb);
  };
  syncBuiltinESMExports();
  return {
    lost: () => lost,
    restore: () => {
      Object.assign(f, real);
      syncBuiltinESMExports();
    },
  };
}

test('aud-crash: a model upload captured before a power loss is still a replay after the reboot', async () => {
  const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-nonces');
  const seed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));
  const leases = new InMemoryLeaseSource();
  leases.leases.set(leaseId, {
    id: leaseId,
    chipId: toHex(await signer.chipId()),
    renterPublicKey: toHex(ed25519PublicKey(seed)),
    status: 'active',
  });
  const dir = await tempDir('aud-crash-nonces-');
  const cache = pageCache();
  const make = () =>
    new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: join(dir.path, 'models'),
      stateDir: join(dir.path, 'state'),
      concurrency: 1,
      logger: silentLogger,
    });
  let provider = make();
  try {
    let url = await provider.start();
    const body = affineModel();
    const headers = signJobRequest(seed, {
      chainId: CHAIN,
      leaseId: Buffer.from(leaseId, 'hex'),
      method: 'POST',
      path: '/v1/models',
      body,
    });
    const first = await fetch(`${url}/v1/models`, { method: 'POST', headers, body });
    assert.equal(first.status, 200, await first.text());
    // The power loss: what only the page cache held is gone.
    await provider.stop();

    provider = make();
    url = await provider.start();
    const replay = await fetch(`${url}/v1/models`, { method: 'POST', headers, body });
    const answer = (await replay.json()) as { error?: { code: string } };
    assert.equal(replay.status, 409, JSON.stringify(answer));
    assert.equal(answer.error?.code, 'AUTH_REPLAY');
    assert.equal(cache.lost(), 0, 'a used nonce was only in the page cache when the power went');
  } finally {
    await provider.stop();
    cache.restore();
    await dir.remove();
  }
});
