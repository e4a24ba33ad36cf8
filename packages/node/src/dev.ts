/**
 * Dev chains: a well-known mnemonic gives the same funded accounts and validator key on every
 * machine (like the dev accounts of other dev nodes), so examples and tests can name them.
 * Never use these keys for anything of value: the mnemonic is public.
 */
import {
  addressFromPublicKey,
  type ChipModel,
  DEFAULT_GENESIS_ALLOCATION_BPS,
  DEFAULT_HALVING_PERIOD_MS,
  DEFAULT_MARKET_PARAMS,
  DEFAULT_MAX_SUPPLY,
  DEFAULT_PARAMS,
  DEFAULT_POCI_PARAMS,
  DEV_SOFT_VENDOR,
  deriveEd25519,
  ed25519PublicKey,
  type Genesis,
  genesisAllocation,
  genesisToJson,
  type HandoverParams,
  mnemonicFromEntropy,
  mnemonicToSeed,
  sha256,
  uncDerivationPath,
  utf8,
  type Vendor,
} from '@unc/core';

/** The public dev mnemonic: BIP-39 of the first 16 bytes of SHA-256("UtilityNet dev accounts"). */
export const DEV_MNEMONIC = mnemonicFromEntropy(sha256(utf8('UtilityNet dev accounts')).slice(0, 16));
export const DEV_CHAIN_ID = 'unc-dev-1';
export const DEV_ACCOUNT_COUNT = 10;
/** Derivation index of the dev validator's key (kept apart from the account indexes). */
export const DEV_VALIDATOR_INDEX = 1000;

export interface DevKey {
  name: string;
  index: number;
  seed: Uint8Array;
  publicKey: Uint8Array;
  address: Uint8Array;
}

export function devKey(index: number, name = `dev${index}`): DevKey {
  const seed = deriveEd25519(mnemonicToSeed(DEV_MNEMONIC), uncDerivationPath(index)).key;
  const publicKey = ed25519PublicKey(seed);
  return { name, index, seed, publicKey, address: addressFromPublicKey(publicKey) };
}

export function devAccounts(count = DEV_ACCOUNT_COUNT): DevKey[] {
  return Array.from({ length: count }, (_, i) => devKey(i));
}

export function devValidator(): DevKey {
  return devKey(DEV_VALIDATOR_INDEX, 'validator');
}

/** Dev validator i of a several-validator dev chain; validator 0 is `devValidator()`. */
export function devValidatorKey(i: number): DevKey {
  return i === 0 ? devValidator() : devKey(DEV_VALIDATOR_INDEX + i, `validator-${i}`);
}

/** Derivation index of the dev chain's single governance key. */
export const DEV_GOVERNANCE_INDEX = 2000;

export function devGovernanceKey(): DevKey {
  return devKey(DEV_GOVERNANCE_INDEX, 'governance');
}

/** Derivation index of dev chip i's software key. */
export const DEV_CHIP_INDEX = 3000;

/** The dev miner's operator account: it owns the dev chips and sends their transactions. */
export const DEV_MINER_ACCOUNT = 9;

export function devChipKey(i: number): DevKey {
  return devKey(DEV_CHIP_INDEX + i, `dev-chip-${i}`);
}

/** Chip models of the dev chain's software vendor; power is dense FP16 TFLOPS × 1000. */
export const DEV_MODELS = [
  { modelId: 'sim-h100', name: 'Simulated H100 SXM (software key)', power: 989_000n },
  { modelId: 'sim-a100', name: 'Simulated A100 SXM (software key)', power: 312_000n },
] as const;

/** A dev genesis hands over to any non-empty computed set (one bonded dev chip is enough). */
export const DEV_HANDOVER: Readonly<HandoverParams> = Object.freeze({ minWeight: 1n, minValidators: 1 });

/**
 * A dev genesis: the whole 3% genesis allocation, 1,000 UNC of it to the governance key (to pay for
 * its proposals) and the rest split evenly over the dev accounts (the first takes the remainder, so
 * the sum is exact); the dev validator (or the given ones), the dev software vendor and models, and
 * the given block interval.
 */
export function devGenesis(
  opts: {
    blockTimeMs?: number;
    accounts?: number;
    time?: Date;
    epochBlocks?: number;
    /**
     * How long after a request a dispute of it is taken (default 10 s: a dev chain is for trying the
     * flow; the protocol default, DEFAULT_MARKET_PARAMS, is 5 min).
     */
    disputeWaitMs?: number;
    /** More vendors and models, e.g. the dev TPM vendor of `unc dev --tpm-chips`. */
    vendors?: Vendor[];
    models?: ChipModel[];
    /** The validators (default: the one dev validator), e.g. those of `unc testnet`. */
    validators?: { publicKey: Uint8Array; name: string }[];
    /**
     * The chain id (default DEV_CHAIN_ID). Votes sign the chain id, not the genesis hash, so a
     * genesis whose validators hold keys of their own needs an id no other chain has
     * (docs/consensus.md), unless its validator keys are fresh, as every `unc testnet`'s are.
     */
    chainId?: string;
    /**
     * When a computed validator set replaces the genesis set (audit G1). Default: any non-empty
     * computed set, written explicitly: a dev chain or `unc testnet` is run by one person, whose
     * own bonded chips are the only candidates, so it keeps handing over as it always did. A
     * public chain's genesis must set a real bar (docs/operators.md).
     */
    handover?: HandoverParams;
  } = {},
): Genesis {
  const accounts = devAccounts(opts.accounts ?? DEV_ACCOUNT_COUNT);
  const total = genesisAllocation({
    maxSupply: DEFAULT_MAX_SUPPLY,
    genesisAllocationBps: DEFAULT_GENESIS_ALLOCATION_BPS,
  });
  // The governance key gets enough to pay for its proposals; the dev accounts share the rest.
  const governanceFunds = 1_000n * 10n ** 18n;
  const each = (total - governanceFunds) / BigInt(accounts.length);
  const remainder = total - governanceFunds - each * BigInt(accounts.length);
  return {
    chainId: opts.chainId ?? DEV_CHAIN_ID,
    genesisTime: BigInt((opts.time ?? new Date()).getTime()),
    params: { ...DEFAULT_PARAMS, blockTimeMs: opts.blockTimeMs ?? DEFAULT_PARAMS.blockTimeMs },
    maxSupply: DEFAULT_MAX_SUPPLY,
    genesisAllocationBps: DEFAULT_GENESIS_ALLOCATION_BPS,
    accounts: [
      ...accounts.map((a, i) => ({ address: a.address, balance: each + (i === 0 ? remainder : 0n) })),
      { address: devGovernanceKey().address, balance: governanceFunds },
    ],
    validators: opts.validators ?? [{ publicKey: devValidator().publicKey, name: 'dev-validator' }],
    halvingPeriodMs: DEFAULT_HALVING_PERIOD_MS,
    governance: { threshold: 1, keys: [devGovernanceKey().publicKey] },
    poci: { ...DEFAULT_POCI_PARAMS, epochBlocks: BigInt(opts.epochBlocks ?? 60), devSoftEnabled: true },
    handover: opts.handover ?? { ...DEV_HANDOVER },
    market: { ...DEFAULT_MARKET_PARAMS, disputeWaitMs: BigInt(opts.disputeWaitMs ?? 10_000) },
    vendors: [
      { id: DEV_SOFT_VENDOR, name: 'Dev software chips', profile: 'dev-soft', roots: [] },
      ...(opts.vendors ?? []),
    ],
    models: [...DEV_MODELS.map((m) => ({ vendorId: DEV_SOFT_VENDOR, ...m })), ...(opts.models ?? [])],
  };
}

export function devGenesisJson(opts: Parameters<typeof devGenesis>[0] = {}): Record<string, unknown> {
  return genesisToJson(devGenesis(opts));
}
