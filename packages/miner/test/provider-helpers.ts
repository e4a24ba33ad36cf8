/** Shared by the provider tests: an in-memory lease table and chip records as the chain keeps them. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Chip, ed25519PublicKey, encodeAddress, toHex } from '@unc/core';
import { type ChipJson, ProviderClient, signJobRequest } from '@unc/sdk';
import { DevSoftSigner, type LeaseSource, leaseAt, type ProviderLease } from '../src/index.js';

/** The fixtures in the source tree (tests run from dist/test). */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');
export const fixture = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, name)));
export const OCR_SAMPLE_TEXT = 'UtilityNet 2026 rental receipt';

/**
 * Leases held in memory, standing in for the chain's `unc_getLease` in tests of the HTTP, auth and
 * queue layers; `calls` counts reads so the tests can see when the provider asks again.
 */
export class InMemoryLeaseSource implements LeaseSource {
  readonly leases = new Map<string, ProviderLease>();
  calls = 0;
  async getLease(idHex: string): Promise<ProviderLease | null> {
    this.calls++;
    const l = this.leases.get(idHex);
    // As RpcLeaseSource does: past its escrowUntil a lease reads 'ended'.
    return l ? leaseAt({ ...l }, Date.now()) : null;
  }
}

/**
 * One active lease of a fresh dev-soft chip to a fresh renter, for the benches that run a provider
 * outside a chain (bench:jobs, gpu-check).
 */
export async function benchLease(chipName: string) {
  const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', chipName);
  const renterSeed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));
  const lease: ProviderLease = {
    id: leaseId,
    chipId: toHex(await signer.chipId()),
    renterPublicKey: toHex(ed25519PublicKey(renterSeed)),
    status: 'active',
  };
  const leases: LeaseSource = { getLease: async (id) => (id === leaseId ? lease : null) };
  return { signer, renterSeed, leaseId, leases };
}

/** A chip record as the chain stores it after registration (only identity fields matter here). */
export function chipRecord(
  fields: Pick<Chip, 'chipId' | 'profile' | 'keyMaterial' | 'vendorId' | 'modelId'>,
): Chip {
  return {
    ...fields,
    owner: new Uint8Array(20).fill(7),
    power: 1000n,
    certSerials: [],
    registeredAt: 1n,
    firstEpoch: 1n,
    status: 0,
    statusReason: '',
    tpmClock: null,
    creditClock: null,
    creditClockTime: 0n,
    priorCredit: null,
    epoch: 0n,
    answered: 0,
    prevAnswered: 0,
    uncredited: 0,
    prevUncredited: 0,
    lastAnsweredSlot: 0n,
    lastAnsweredAt: 0n,
    settledThrough: 0n,
    slotsAnswered: 0n,
    slotsMissed: 0n,
    rewardsEarned: 0n,
    rewardedThrough: 0n,
    prevPower: 1000n,
    certsNotAfter: null,
    releasedAt: 0n,
  };
}

/** The same record as `unc_getChip` returns it. */
export function chipJsonOf(chip: Chip): ChipJson {
  return {
    chipId: toHex(chip.chipId),
    owner: encodeAddress(chip.owner),
    vendorId: chip.vendorId,
    modelId: chip.modelId,
    profile: chip.profile,
    power: chip.power.toString(),
    certSerials: chip.certSerials,
    keyMaterial: toHex(chip.keyMaterial),
    status: 'active',
    statusReason: '',
    online: true,
    consecutiveMisses: 0,
    registeredAt: 1,
    firstEpoch: 1,
    lastAnsweredAt: 0,
    slotsAnswered: 0,
    slotsMissed: 0,
    rewardsEarned: '0',
    tpmClock: null,
    slots: [],
    challengeClass: 0,
  };
}

/** A fresh renter key and its active lease on `chip`, recorded in `leases`. */
export async function activeLease(
  leases: InMemoryLeaseSource,
  chip: DevSoftSigner,
): Promise<{ seed: Uint8Array; leaseId: string }> {
  const seed = new Uint8Array(randomBytes(32));
  const leaseId = toHex(randomBytes(32));
  leases.leases.set(leaseId, {
    id: leaseId,
    chipId: toHex(await chip.chipId()),
    renterPublicKey: toHex(ed25519PublicKey(seed)),
    status: 'active',
  });
  return { seed, leaseId };
}

/**
 * A renter of a fresh active lease on `chip`: the sdk's client, and the signer of raw requests (for
 * the tests that write a request's bytes by hand).
 */
export async function leaseRenter(
  leases: InMemoryLeaseSource,
  chip: DevSoftSigner,
  endpoint: string,
  chainId: string,
) {
  const { seed, leaseId } = await activeLease(leases, chip);
  const client = new ProviderClient({ endpoint, chainId, leaseId, renterSeed: seed, allowHttp: true });
  const sign = (method: string, path: string, body: Uint8Array) =>
    signJobRequest(seed, { chainId, leaseId: Buffer.from(leaseId, 'hex'), method, path, body });
  return { client, sign };
}

/**
 * A POST of which the headers and `sent` are written and `length` declared, the rest never sent;
 * resolves with the answer's status and error code. The server may close the connection while the
 * request is still being written: that is no failure of the request's own.
 */
export function partialRequest(
  url: string,
  path: string,
  headers: Record<string, string>,
  length: number,
  sent: Uint8Array = new Uint8Array(0),
) {
  const u = new URL(url);
  const req = request({
    host: u.hostname,
    port: u.port,
    path,
    method: 'POST',
    headers: { ...headers, 'content-length': length },
  });
  const answer = new Promise<{ status: number; code: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString('utf8');
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          code: (JSON.parse(text) as { error: { code: string } }).error.code,
        }),
      );
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
  });
  if (sent.length > 0) req.write(sent);
  else req.flushHeaders();
  return { req, answer };
}
