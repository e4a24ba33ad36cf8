/**
 * The set-up the provider upload tests share: a provider server on three dev chips with the upload
 * caps a test names, an in-memory lease table, and renters that each hold a fresh lease on one of
 * the chips (each its own renter key). Called inside a `describe`: it registers the before/after
 * that start and stop the server and remove its directory.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { silentLogger } from '@unc/node';
import { DevSoftSigner, type ProviderOptions, ProviderServer } from '../src/index.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource, leaseRenter } from './provider-helpers.js';

/** The options a test chooses: the caps and the pace (the rest is the fixture's). */
export type UploadCaps = Omit<
  ProviderOptions,
  'chainId' | 'signers' | 'leases' | 'modelDir' | 'stateDir' | 'logger'
>;

export interface UploadProvider {
  readonly leases: InMemoryLeaseSource;
  readonly chips: DevSoftSigner[];
  /** Set once the `before` has run. */
  readonly provider: ProviderServer;
  readonly url: string;
  /** The server's directory (models in `models/`). */
  readonly dir: string;
  /** A renter of a fresh lease on chip 0, 1 or 2. */
  renter(chip: number): ReturnType<typeof leaseRenter>;
}

export function uploadProvider(chainId: string, name: string, caps: UploadCaps): UploadProvider {
  const leases = new InMemoryLeaseSource();
  const chips = [0, 1, 2].map(
    (i) => new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', `${name}-${i}`),
  );
  let dir: { path: string; remove(): Promise<void> } | undefined;
  let provider: ProviderServer | undefined;
  let url = '';
  before(async () => {
    dir = await tempDir(`unc-provider-${name}-`);
    provider = new ProviderServer({
      chainId,
      signers: chips,
      leases,
      modelDir: join(dir.path, 'models'),
      stateDir: join(dir.path, 'state'),
      concurrency: 1,
      logger: silentLogger,
      ...caps,
    });
    url = await provider.start();
  });
  after(async () => {
    await provider?.stop();
    await dir?.remove();
  });
  const started = <T>(v: T | undefined): T => {
    assert.ok(v !== undefined, 'the provider is started in the before hook');
    return v;
  };
  return {
    leases,
    chips,
    get provider() {
      return started(provider);
    },
    get url() {
      return url;
    },
    get dir() {
      return started(dir).path;
    },
    renter: (chip: number) => leaseRenter(leases, chips[chip]!, url, chainId),
  };
}

/** Waits until `ok()` holds (a count of the provider's), polling; fails after 20 s. */
export async function until(ok: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (!ok()) {
    assert.ok(Date.now() < end, `never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
