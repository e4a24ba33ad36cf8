/**
 * The genesis file: chain id, start time, parameters, the 3% allocation and the first validators.
 * It is JSON because people edit it; parsing is strict and every error names the field.
 */

import { fromHex, toHex } from '../bytes.js';
import {
  type ConsensusParams,
  checkConsensusParams,
  checkHandoverParams,
  DEFAULT_CONSENSUS_PARAMS,
  defaultHandoverParams,
  type HandoverParams,
  putConsensusParams,
  putGenesisValidators,
  putHandoverParams,
} from '../consensus/epoch-validators.js';
import { MAX_VALIDATORS } from '../consensus/validators.js';
import { decodeAddress, encodeAddress } from '../crypto/address.js';
import { UncError } from '../errors.js';
import {
  checkMarketParams,
  DEFAULT_MARKET_PARAMS,
  type MarketParams,
  putMarketParams,
} from '../market/params.js';
import { checkPociParams, checkVendorRoots } from '../poci/execute.js';
import { putGovernance } from '../poci/governance.js';
import { DEFAULT_POCI_PARAMS, type PociParams, putPociParams } from '../poci/params.js';
import {
  type ChipModel,
  checkId,
  MAX_MODEL_POWER,
  PROFILES,
  type Profile,
  putModel,
  putVendor,
  type Vendor,
} from '../poci/registry.js';
import { DEFAULT_HALVING_PERIOD_MS, putEmission } from '../rewards/emission.js';
import { putAccount } from '../state/accounts.js';
import { MemoryState, StateOverlay, type StateWrite } from '../state/store.js';
import { putSupply } from '../state/supply.js';
import { parseBaseUnits } from '../units.js';
import { MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_TX_BYTES } from './block.js';
import { type ChainParams, DEFAULT_PARAMS, putParams } from './params.js';
import { MAX_CHAIN_ID_BYTES } from './transaction.js';

export interface GenesisAccount {
  address: Uint8Array;
  balance: bigint;
}

export interface GenesisValidator {
  publicKey: Uint8Array;
  name: string;
  /** Its weight in the genesis set (1 when absent; docs/operators.md §2). */
  power?: bigint;
}

/** The most weight a genesis validator may be given: u64, so no sum of a set comes near u128. */
export const MAX_GENESIS_VALIDATOR_POWER = (1n << 64n) - 1n;

export interface GenesisGovernance {
  threshold: number;
  keys: Uint8Array[];
}

export interface Genesis {
  chainId: string;
  /** Milliseconds since the Unix epoch. */
  genesisTime: bigint;
  params: ChainParams;
  maxSupply: bigint;
  /** Basis points of maxSupply allocated at genesis (300 = 3%); the rest is the mining reserve. */
  genesisAllocationBps: number;
  accounts: GenesisAccount[];
  validators: GenesisValidator[];
  governance: GenesisGovernance;
  /** Mining emission halves every this many milliseconds of chain time (default 2 years). */
  halvingPeriodMs: bigint;
  poci: PociParams;
  /**
   * Validator-set rules (minimum bond, UNC per unit of power, tombstone length, N, slash). Absent
   * = the defaults (DEFAULT_CONSENSUS_PARAMS), and then nothing is written to the state for them.
   */
  consensus?: ConsensusParams;
  /**
   * When a computed validator set may replace the genesis set (audit G1; JSON `handoverMinWeight`,
   * a decimal string of weight units, and `handoverMinValidators`). Absent = the defaults
   * (defaultHandoverParams of the consensus parameters), and then nothing is written to the state.
   */
  handover?: HandoverParams;
  /**
   * Market rules (the dispute wait, the receipt window). Absent = the defaults
   * (DEFAULT_MARKET_PARAMS), and then nothing is written to the state for them.
   */
  market?: MarketParams;
  vendors: Vendor[];
  models: ChipModel[];
}

export const DEFAULT_MAX_SUPPLY = 1_000_000_000n * 10n ** 18n;
export const DEFAULT_GENESIS_ALLOCATION_BPS = 300;

/** Calls `repeated(i)` for the first key equal to an earlier one (byte for byte). */
function firstRepeat(keys: readonly Uint8Array[], repeated: (i: number) => void): void {
  const seen = new Set<string>();
  for (let i = 0; i < keys.length; i++) {
    const id = toHex(keys[i]!);
    if (seen.has(id)) {
      repeated(i);
      return;
    }
    seen.add(id);
  }
}

function bad(field: string, why: string): never {
  throw new UncError('BAD_GENESIS', `genesis ${field}: ${why}`);
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(field, 'must be an object');
  return v as Record<string, unknown>;
}

function int(v: unknown, field: string, max = 2 ** 32 - 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    bad(field, `must be an integer 0…${max}`);
  return v;
}

function amount(v: unknown, field: string): bigint {
  try {
    return parseBaseUnits(v as string, field);
  } catch {
    bad(field, 'must be a decimal string of base units');
  }
}

export function genesisAllocation(g: Pick<Genesis, 'maxSupply' | 'genesisAllocationBps'>): bigint {
  return (g.maxSupply * BigInt(g.genesisAllocationBps)) / 10_000n;
}

/** Parses and validates a genesis JSON document. */
export function parseGenesis(json: unknown): Genesis {
  const g = obj(json, 'document');
  const chainId = g.chainId;
  if (typeof chainId !== 'string' || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(chainId)) {
    bad('chainId', 'must be 1-63 lowercase letters, digits or dashes');
  }
  if (new TextEncoder().encode(chainId).length > MAX_CHAIN_ID_BYTES) bad('chainId', 'too long');
  if (typeof g.genesisTime !== 'string' || Number.isNaN(Date.parse(g.genesisTime))) {
    bad('genesisTime', 'must be an ISO 8601 time');
  }
  const genesisTime = BigInt(Date.parse(g.genesisTime));
  // Block times are u64 milliseconds since 1970: an earlier genesis cannot even be stored (the
  // emission record's encoding refused it with an uncoded RangeError, after parsing had passed).
  if (genesisTime < 0n) bad('genesisTime', 'must not be before 1970-01-01T00:00:00Z');
  const p = obj(g.params ?? {}, 'params');
  const params: ChainParams = {
    blockTimeMs:
      p.blockTimeMs === undefined ? DEFAULT_PARAMS.blockTimeMs : int(p.blockTimeMs, 'params.blockTimeMs'),
    maxBlockTxs:
      p.maxBlockTxs === undefined
        ? DEFAULT_PARAMS.maxBlockTxs
        : int(p.maxBlockTxs, 'params.maxBlockTxs', MAX_BLOCK_TXS),
    maxBlockBytes:
      p.maxBlockBytes === undefined
        ? DEFAULT_PARAMS.maxBlockBytes
        : int(p.maxBlockBytes, 'params.maxBlockBytes', MAX_BLOCK_BYTES),
    maxTxBytes:
      p.maxTxBytes === undefined
        ? DEFAULT_PARAMS.maxTxBytes
        : int(p.maxTxBytes, 'params.maxTxBytes', MAX_TX_BYTES),
    minFeePerByte:
      p.minFeePerByte === undefined
        ? DEFAULT_PARAMS.minFeePerByte
        : amount(p.minFeePerByte, 'params.minFeePerByte'),
    minFeePerAction:
      p.minFeePerAction === undefined
        ? DEFAULT_PARAMS.minFeePerAction
        : amount(p.minFeePerAction, 'params.minFeePerAction'),
    maxTxLifetimeBlocks:
      p.maxTxLifetimeBlocks === undefined
        ? DEFAULT_PARAMS.maxTxLifetimeBlocks
        : BigInt(int(p.maxTxLifetimeBlocks, 'params.maxTxLifetimeBlocks')),
  };
  if (params.blockTimeMs < 10) bad('params.blockTimeMs', 'must be at least 10 ms');
  if (params.maxTxBytes < 256) bad('params.maxTxBytes', 'must be at least 256');
  if (params.maxBlockBytes < params.maxTxBytes) bad('params.maxBlockBytes', 'must be at least maxTxBytes');

  const maxSupply = g.maxSupply === undefined ? DEFAULT_MAX_SUPPLY : amount(g.maxSupply, 'maxSupply');
  const genesisAllocationBps =
    g.genesisAllocationBps === undefined
      ? DEFAULT_GENESIS_ALLOCATION_BPS
      : int(g.genesisAllocationBps, 'genesisAllocationBps', 10_000);

  if (!Array.isArray(g.accounts)) bad('accounts', 'must be an array');
  const seen = new Set<string>();
  const accounts = g.accounts.map((a, i): GenesisAccount => {
    const o = obj(a, `accounts[${i}]`);
    let address: Uint8Array;
    try {
      address = decodeAddress(o.address as string);
    } catch (err) {
      bad(`accounts[${i}].address`, (err as Error).message);
    }
    // By the address's bytes, not its text: bech32 reads an upper-case address as the lower-case
    // one, and a second entry for one account wrote one balance while the allocation counted both
    // (docs/security-audit-money.md L-1).
    const id = toHex(address);
    if (seen.has(id)) bad(`accounts[${i}].address`, 'duplicate');
    seen.add(id);
    return { address, balance: amount(o.balance, `accounts[${i}].balance`) };
  });
  const allocated = accounts.reduce((s, a) => s + a.balance, 0n);
  const expected = genesisAllocation({ maxSupply, genesisAllocationBps });
  if (allocated !== expected) {
    bad(
      'accounts',
      `balances sum to ${allocated} but the genesis allocation is exactly ${expected} base units`,
    );
  }

  if (!Array.isArray(g.validators) || g.validators.length === 0)
    bad('validators', 'must be a non-empty array');
  // What a validator set holds (ValidatorSet, validatorListCodec): more parsed, and every node
  // failed later writing or building the set.
  if (g.validators.length > MAX_VALIDATORS) bad('validators', `at most ${MAX_VALIDATORS}`);
  const validators = g.validators.map((v, i): GenesisValidator => {
    const o = obj(v, `validators[${i}]`);
    let publicKey: Uint8Array;
    try {
      publicKey = fromHex(o.publicKey as string, 32);
    } catch {
      bad(`validators[${i}].publicKey`, 'must be 32 bytes of hex');
    }
    const name = typeof o.name === 'string' ? o.name : `validator-${i}`;
    if (o.power === undefined) return { publicKey, name };
    // The weight docs/operators.md promises (audgov G3): before, a `power` was dropped without a
    // word and the validator weighed 1, whatever the founders had agreed.
    const power = amount(o.power, `validators[${i}].power`);
    if (power < 1n || power > MAX_GENESIS_VALIDATOR_POWER)
      bad(`validators[${i}].power`, `must be 1…${MAX_GENESIS_VALIDATOR_POWER}`);
    return { publicKey, name, power };
  });
  // Once each (audgov G2): a key listed twice parsed, and every node failed later, building the
  // set (BAD_VALIDATOR_SET), with no pointer to the genesis entry.
  firstRepeat(
    validators.map((v) => v.publicKey),
    (i) => bad(`validators[${i}].publicKey`, 'duplicate'),
  );

  const gov = obj(g.governance, 'governance');
  if (!Array.isArray(gov.keys) || gov.keys.length === 0 || gov.keys.length > 32) {
    bad('governance.keys', 'must be an array of 1-32 Ed25519 public keys (hex)');
  }
  const govKeys = gov.keys.map((k, i) => {
    try {
      return fromHex(k as string, 32);
    } catch {
      bad(`governance.keys[${i}]`, 'must be 32 bytes of hex');
    }
  });
  // Once each (audgov G2): approvals count distinct keys (checkApprovals), so a key listed twice
  // counted twice towards the threshold's bound only: threshold 2 of [A, A] parsed and could never
  // be met, and no proposal can change the keys.
  firstRepeat(govKeys, (i) => bad(`governance.keys[${i}]`, 'duplicate'));
  const threshold = int(gov.threshold, 'governance.threshold', 32);
  if (threshold < 1 || threshold > govKeys.length) bad('governance.threshold', 'must be 1…number of keys');

  const halvingPeriodMs =
    g.halvingPeriodMs === undefined
      ? DEFAULT_HALVING_PERIOD_MS
      : amount(g.halvingPeriodMs, 'halvingPeriodMs');
  if (halvingPeriodMs < 1000n) bad('halvingPeriodMs', 'must be at least 1000 ms');
  const pj = obj(g.poci ?? {}, 'poci');
  const dp = DEFAULT_POCI_PARAMS;
  const poci: PociParams = {
    epochBlocks:
      pj.epochBlocks === undefined ? dp.epochBlocks : BigInt(int(pj.epochBlocks, 'poci.epochBlocks')),
    slotsPerEpoch:
      pj.slotsPerEpoch === undefined ? dp.slotsPerEpoch : int(pj.slotsPerEpoch, 'poci.slotsPerEpoch', 8),
    answerWindowBlocks:
      pj.answerWindowBlocks === undefined
        ? dp.answerWindowBlocks
        : BigInt(int(pj.answerWindowBlocks, 'poci.answerWindowBlocks')),
    offlineAfterMisses:
      pj.offlineAfterMisses === undefined
        ? dp.offlineAfterMisses
        : int(pj.offlineAfterMisses, 'poci.offlineAfterMisses'),
    graceSlotsPerEpoch:
      pj.graceSlotsPerEpoch === undefined
        ? dp.graceSlotsPerEpoch
        : int(pj.graceSlotsPerEpoch, 'poci.graceSlotsPerEpoch', 8),
    registrationMaxAgeBlocks:
      pj.registrationMaxAgeBlocks === undefined
        ? dp.registrationMaxAgeBlocks
        : BigInt(int(pj.registrationMaxAgeBlocks, 'poci.registrationMaxAgeBlocks')),
    devSoftEnabled: pj.devSoftEnabled === undefined ? dp.devSoftEnabled : pj.devSoftEnabled === true,
  };
  try {
    checkPociParams(poci);
  } catch (err) {
    bad('poci', (err as Error).message);
  }

  let consensus: ConsensusParams | undefined;
  if (g.consensus !== undefined) {
    const cj = obj(g.consensus, 'consensus');
    const dc = DEFAULT_CONSENSUS_PARAMS;
    consensus = {
      maxValidators:
        cj.maxValidators === undefined ? dc.maxValidators : int(cj.maxValidators, 'consensus.maxValidators'),
      equivocationSlashBps:
        cj.equivocationSlashBps === undefined
          ? dc.equivocationSlashBps
          : BigInt(int(cj.equivocationSlashBps, 'consensus.equivocationSlashBps', 10_000)),
      minValidatorBond:
        cj.minValidatorBond === undefined
          ? dc.minValidatorBond
          : amount(cj.minValidatorBond, 'consensus.minValidatorBond'),
      uncPerPowerUnit:
        cj.uncPerPowerUnit === undefined
          ? dc.uncPerPowerUnit
          : amount(cj.uncPerPowerUnit, 'consensus.uncPerPowerUnit'),
      tombstoneEpochs:
        cj.tombstoneEpochs === undefined
          ? dc.tombstoneEpochs
          : BigInt(int(cj.tombstoneEpochs, 'consensus.tombstoneEpochs')),
    };
    try {
      checkConsensusParams(consensus);
    } catch (err) {
      bad('consensus', (err as Error).message);
    }
  }

  let handover: HandoverParams | undefined;
  if (g.handoverMinWeight !== undefined || g.handoverMinValidators !== undefined) {
    const cp = consensus ?? DEFAULT_CONSENSUS_PARAMS;
    const dh = defaultHandoverParams(cp);
    handover = {
      minWeight:
        g.handoverMinWeight === undefined ? dh.minWeight : amount(g.handoverMinWeight, 'handoverMinWeight'),
      minValidators:
        g.handoverMinValidators === undefined
          ? dh.minValidators
          : int(g.handoverMinValidators, 'handoverMinValidators', MAX_VALIDATORS),
    };
    try {
      checkHandoverParams(handover, cp.maxValidators);
    } catch (err) {
      bad('handover', (err as Error).message);
    }
  }

  let market: MarketParams | undefined;
  if (g.market !== undefined) {
    const mj = obj(g.market, 'market');
    const dm = DEFAULT_MARKET_PARAMS;
    market = {
      disputeWaitMs:
        mj.disputeWaitMs === undefined
          ? dm.disputeWaitMs
          : BigInt(int(mj.disputeWaitMs, 'market.disputeWaitMs')),
      receiptWindowMs:
        mj.receiptWindowMs === undefined
          ? dm.receiptWindowMs
          : BigInt(int(mj.receiptWindowMs, 'market.receiptWindowMs')),
    };
    try {
      checkMarketParams(market);
    } catch (err) {
      bad('market', (err as Error).message);
    }
  }

  const vendors = (g.vendors === undefined ? [] : (g.vendors as unknown[])).map((v, i): Vendor => {
    const o = obj(v, `vendors[${i}]`);
    const id = o.id as string;
    try {
      checkId(id, 'vendor id');
    } catch (err) {
      bad(`vendors[${i}].id`, (err as Error).message);
    }
    if (!PROFILES.includes(o.profile as Profile))
      bad(`vendors[${i}].profile`, `must be one of ${PROFILES.join(', ')}`);
    const roots = (Array.isArray(o.roots) ? o.roots : []).map((r, j) => {
      try {
        return fromHex(r as string);
      } catch {
        bad(`vendors[${i}].roots[${j}]`, 'must be a DER certificate in hex');
      }
    });
    // Parsed as governance's setVendor parses them: an unparsable root would make every
    // registration under this vendor fail from the first block, with nothing to say why.
    roots.forEach((der, j) => {
      try {
        checkVendorRoots([der]);
      } catch (err) {
        bad(`vendors[${i}].roots[${j}]`, `is not a certificate the chain can use: ${(err as Error).message}`);
      }
    });
    const vendor: Vendor = {
      id,
      name: typeof o.name === 'string' ? o.name : id,
      profile: o.profile as Profile,
      roots,
    };
    for (const flag of ['requireAkEku', 'requireHardwareModuleName'] as const) {
      if (o[flag] === undefined || o[flag] === false) continue;
      if (o[flag] !== true) bad(`vendors[${i}].${flag}`, 'must be true or false');
      if (vendor.profile !== 'tpm2') bad(`vendors[${i}].${flag}`, 'applies to tpm2 vendors only');
      vendor[flag] = true;
    }
    return vendor;
  });
  const models = (g.models === undefined ? [] : (g.models as unknown[])).map((m, i): ChipModel => {
    const o = obj(m, `models[${i}]`);
    if (!vendors.some((v) => v.id === o.vendorId))
      bad(`models[${i}].vendorId`, 'names no vendor of this genesis');
    try {
      checkId(o.modelId as string, 'model id');
    } catch (err) {
      bad(`models[${i}].modelId`, (err as Error).message);
    }
    const power = amount(o.power, `models[${i}].power`);
    if (power === 0n || power > MAX_MODEL_POWER) bad(`models[${i}].power`, `must be 1…${MAX_MODEL_POWER}`);
    return {
      vendorId: o.vendorId as string,
      modelId: o.modelId as string,
      name: typeof o.name === 'string' ? o.name : (o.modelId as string),
      power,
    };
  });

  return {
    chainId,
    genesisTime,
    params,
    maxSupply,
    genesisAllocationBps,
    accounts,
    validators,
    governance: { threshold, keys: govKeys },
    halvingPeriodMs,
    poci,
    ...(consensus ? { consensus } : {}),
    ...(handover ? { handover } : {}),
    ...(market ? { market } : {}),
    vendors,
    models,
  };
}

export function genesisToJson(g: Genesis): Record<string, unknown> {
  return {
    chainId: g.chainId,
    genesisTime: new Date(Number(g.genesisTime)).toISOString(),
    params: {
      blockTimeMs: g.params.blockTimeMs,
      maxBlockTxs: g.params.maxBlockTxs,
      maxBlockBytes: g.params.maxBlockBytes,
      maxTxBytes: g.params.maxTxBytes,
      minFeePerByte: g.params.minFeePerByte.toString(),
      minFeePerAction: g.params.minFeePerAction.toString(),
      maxTxLifetimeBlocks: Number(g.params.maxTxLifetimeBlocks),
    },
    maxSupply: g.maxSupply.toString(),
    genesisAllocationBps: g.genesisAllocationBps,
    accounts: g.accounts.map((a) => ({ address: encodeAddress(a.address), balance: a.balance.toString() })),
    validators: g.validators.map((v) => ({
      publicKey: toHex(v.publicKey),
      name: v.name,
      ...(v.power === undefined ? {} : { power: v.power.toString() }),
    })),
    governance: { threshold: g.governance.threshold, keys: g.governance.keys.map(toHex) },
    halvingPeriodMs: g.halvingPeriodMs.toString(),
    poci: {
      epochBlocks: Number(g.poci.epochBlocks),
      slotsPerEpoch: g.poci.slotsPerEpoch,
      answerWindowBlocks: Number(g.poci.answerWindowBlocks),
      offlineAfterMisses: g.poci.offlineAfterMisses,
      graceSlotsPerEpoch: g.poci.graceSlotsPerEpoch,
      registrationMaxAgeBlocks: Number(g.poci.registrationMaxAgeBlocks),
      devSoftEnabled: g.poci.devSoftEnabled,
    },
    ...(g.consensus
      ? {
          consensus: {
            maxValidators: g.consensus.maxValidators,
            equivocationSlashBps: Number(g.consensus.equivocationSlashBps),
            minValidatorBond: g.consensus.minValidatorBond.toString(),
            uncPerPowerUnit: g.consensus.uncPerPowerUnit.toString(),
            tombstoneEpochs: Number(g.consensus.tombstoneEpochs),
          },
        }
      : {}),
    ...(g.handover
      ? {
          handoverMinWeight: g.handover.minWeight.toString(),
          handoverMinValidators: g.handover.minValidators,
        }
      : {}),
    ...(g.market
      ? {
          market: {
            disputeWaitMs: Number(g.market.disputeWaitMs),
            receiptWindowMs: Number(g.market.receiptWindowMs),
          },
        }
      : {}),
    vendors: g.vendors.map((v) => ({
      id: v.id,
      name: v.name,
      profile: v.profile,
      roots: v.roots.map(toHex),
      ...(v.requireAkEku ? { requireAkEku: true } : {}),
      ...(v.requireHardwareModuleName ? { requireHardwareModuleName: true } : {}),
    })),
    models: g.models.map((m) => ({
      vendorId: m.vendorId,
      modelId: m.modelId,
      name: m.name,
      power: m.power.toString(),
    })),
  };
}

/** The state before block 1. */
export function genesisStateWrites(g: Genesis): StateWrite[] {
  const overlay = new StateOverlay(new MemoryState());
  putParams(overlay, g.params);
  const allocation = genesisAllocation(g);
  putSupply(overlay, {
    maxSupply: g.maxSupply,
    genesisAllocation: allocation,
    miningReserve: g.maxSupply - allocation,
    minted: 0n,
    burned: 0n,
    slashed: 0n,
  });
  const accounts = new Set<string>();
  for (const a of g.accounts) {
    // One balance per account: a second entry would overwrite the first, which the supply still counts.
    const id = toHex(a.address);
    if (accounts.has(id)) throw new RangeError(`genesis lists account ${encodeAddress(a.address)} twice`);
    accounts.add(id);
    putAccount(overlay, a.address, { balance: a.balance, nonce: 0n });
  }
  firstRepeat(g.governance.keys, (i) => {
    throw new RangeError(`genesis lists governance key ${toHex(g.governance.keys[i]!)} twice`);
  });
  firstRepeat(
    g.validators.map((v) => v.publicKey),
    (i) => {
      throw new RangeError(`genesis lists validator ${toHex(g.validators[i]!.publicKey)} twice`);
    },
  );
  putGovernance(overlay, { threshold: g.governance.threshold, keys: g.governance.keys, nonce: 0n });
  putPociParams(overlay, g.poci);
  if (g.consensus) putConsensusParams(overlay, g.consensus);
  // After the consensus parameters: minValidators is checked against their maxValidators.
  if (g.handover) putHandoverParams(overlay, g.handover);
  if (g.market) putMarketParams(overlay, g.market);
  putEmission(overlay, { genesisTime: g.genesisTime, halvingPeriodMs: g.halvingPeriodMs, allocated: 0n });
  for (const v of g.vendors) putVendor(overlay, v);
  for (const m of g.models) putModel(overlay, m);
  // In the state so that evidence against a genesis validator can be checked from the state alone.
  putGenesisValidators(overlay, g);
  return overlay.changes();
}
