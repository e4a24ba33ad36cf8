/**
 * The provider endpoint of each lease this home opened, as the user confirmed it (`market lease`).
 *
 * Jobs go to the endpoint the node reports for the lease, and a node the user does not run can
 * report any: its own server would then get every input, and answer with receipts signed by a chip
 * key it reports too. The endpoint confirmed at opening is different: it is in the offer terms the
 * lease signs (termsDigest), and the chain refuses the lease (OFFER_CHANGED) if they are not the
 * offer's. So it is kept here, and `unc job` refuses a lease whose node-reported endpoint differs.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UncError } from '@unc/core';
import { removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { checkHome } from './home.js';

export interface LeasePin {
  leaseId: string;
  chainId: string;
  offerId: string;
  /** The endpoint in the terms the user confirmed and the lease signed. */
  endpoint: string;
  /** The opening transaction. */
  hash: string;
}

const ID = /^[0-9a-f]{64}$/;

function pinsDir(home: string): string {
  return join(home, 'leases');
}

/**
 * Records the terms a lease was opened on (0600, in a 0700 `<home>/leases`). The lease id is the
 * node's word (the chain derives it from a counter the client cannot check), so a record of
 * another lease under that id is never replaced: a node naming an older lease of this home's
 * would otherwise move that lease's jobs to the endpoint of the offer just confirmed (its own,
 * listed for the purpose). Written again with the same terms, it changes nothing.
 */
export function pinLease(home: string, pin: LeasePin): void {
  if (!ID.test(pin.leaseId))
    throw new UncError(
      'BAD_LEASE_ID',
      `the node reports the lease of transaction ${pin.hash} as ${pin.leaseId}, not 64 hex digits: its endpoint is not recorded`,
    );
  const dir = pinsDir(home);
  checkHome(dir, 'leases folder');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkHome(dir, 'leases folder');
  const path = join(dir, `${pin.leaseId}.json`);
  const held = readPin(path, pin.leaseId);
  if (held) {
    if (held.chainId === pin.chainId && held.endpoint === pin.endpoint && held.offerId === pin.offerId)
      return;
    throw new UncError(
      'LEASE_PIN_TAKEN',
      `the node reports the lease of transaction ${pin.hash} as ${pin.leaseId}, which this home recorded for the lease of transaction ${held.hash} (offer ${held.offerId}, ${held.endpoint}, chain ${held.chainId}): the record is kept, the new lease's endpoint is not recorded. The node may be lying; check the lease id on a node you trust. After \`unc dev --reset\` of a chain run in another home, remove ${path}`,
    );
  }
  writeFileWhole(path, `${JSON.stringify(pin, null, 2)}\n`);
}

function readPin(path: string, leaseId: string): LeasePin | undefined {
  removeWholeLeftovers(path);
  if (!existsSync(path)) return undefined;
  let pin: Partial<LeasePin>;
  try {
    pin = JSON.parse(readFileSync(path, 'utf8')) as Partial<LeasePin>;
  } catch (err) {
    throw new UncError('BAD_LEASE_PIN', `${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof pin.endpoint !== 'string' || typeof pin.chainId !== 'string' || pin.leaseId !== leaseId)
    throw new UncError('BAD_LEASE_PIN', `${path} does not hold the lease's endpoint`);
  return pin as LeasePin;
}

/**
 * The pin of `leaseId`, if this home opened it. Found by the lease id alone, whatever chain id the
 * node names: a lease id is a hash over its chain's id, so a node naming another chain for a lease
 * this home opened is lying (it would otherwise skip the record and have its own endpoint used).
 */
export function leasePin(home: string, leaseId: string, chainId: string): LeasePin | undefined {
  if (!ID.test(leaseId)) return undefined;
  const dir = pinsDir(home);
  if (!existsSync(dir)) return undefined;
  checkHome(dir, 'leases folder');
  const pin = readPin(join(dir, `${leaseId}.json`), leaseId);
  if (pin && pin.chainId !== chainId)
    throw new UncError(
      'CHAIN_CHANGED',
      `lease ${leaseId} was opened (transaction ${pin.hash}) on chain ${pin.chainId}, but the node names chain ${chainId}: nothing was sent. Use a node of chain ${pin.chainId}`,
    );
  return pin;
}

/**
 * The ids of the leases this home opened. A lease given by a prefix is resolved against these too
 * (ids.ts): from the node's lists alone, a node leaving this home's lease out and listing a
 * look-alike of its own (same prefix, no record here) had the prefix name the look-alike, and its
 * endpoint (the node's server) get the inputs. With these, the two match and the prefix is refused
 * as ambiguous.
 */
export function pinnedLeaseIds(home: string): string[] {
  const dir = pinsDir(home);
  if (!existsSync(dir)) return [];
  checkHome(dir, 'leases folder');
  return readdirSync(dir)
    .map((name) => /^([0-9a-f]{64})\.json$/.exec(name)?.[1])
    .filter((id): id is string => id !== undefined);
}

/**
 * The endpoint jobs of a lease go to: `given` (--endpoint, the user's own word), else the node's,
 * which must be the pinned one when this home opened the lease. Refused before any connection.
 */
export function leaseEndpoint(p: {
  leaseId: string;
  given?: string;
  reported?: string;
  pin?: LeasePin;
  node: string;
}): string | undefined {
  if (p.given) return p.given;
  if (!p.pin) return p.reported;
  if (p.reported !== undefined && p.reported !== p.pin.endpoint)
    throw new UncError(
      'ENDPOINT_CHANGED',
      `the node at ${p.node} reports lease ${p.leaseId} at ${p.reported}, but it was opened (transaction ${p.pin.hash}) on offer terms naming ${p.pin.endpoint}, which the chain checked: nothing was sent. The node may be lying to have your inputs; use a node you trust, or pass --endpoint if the provider moved`,
    );
  return p.pin.endpoint;
}
