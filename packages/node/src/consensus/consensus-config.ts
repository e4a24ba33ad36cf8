/**
 * The `"consensus"` object of a node's `config.json`: settings of this node alone (never of the
 * chain: everything the network must agree on is in the genesis file).
 */
import { DEFAULT_BLOCK_WRITE_TIMEOUT_MS } from './driver.js';

export interface ConsensusConfig {
  /** DriverOptions.blockWriteTimeoutMs: a block write pending this long is fatal (exit 70). */
  blockWriteTimeoutMs: number;
}

export const DEFAULT_CONSENSUS_CONFIG: Readonly<ConsensusConfig> = {
  blockWriteTimeoutMs: DEFAULT_BLOCK_WRITE_TIMEOUT_MS,
};

/** The settings of a config file's `"consensus"` object (absent: the defaults); throws saying why not. */
export function parseConsensusConfig(value: unknown): Partial<ConsensusConfig> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new TypeError('consensus must be an object');
  const config: Partial<ConsensusConfig> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key !== 'blockWriteTimeoutMs')
      throw new TypeError(
        `consensus.${key} is not a consensus setting (known: ${Object.keys(DEFAULT_CONSENSUS_CONFIG).join(', ')})`,
      );
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      throw new TypeError(`consensus.${key} must be a positive integer (ms)`);
    config.blockWriteTimeoutMs = v;
  }
  return config;
}
