/**
 * The `"consensus"` object of a node's `config.json`: settings of this node alone (never of the
 * chain: everything the network must agree on is in the genesis file). One parser for every key,
 * so that each key is known wherever the object is read and a misspelt one is refused, not
 * silently ignored.
 */
import { DEFAULT_BLOCK_WRITE_TIMEOUT_MS } from './driver.js';

export interface ConsensusConfig {
  /** DriverOptions.blockWriteTimeoutMs: a block write pending this long is fatal (exit 70). */
  blockWriteTimeoutMs: number;
  /** DriverOptions.paceHeights: proposal size also follows how long recent heights took. */
  paceHeights: boolean;
}

export const DEFAULT_CONSENSUS_CONFIG: Readonly<ConsensusConfig> = {
  blockWriteTimeoutMs: DEFAULT_BLOCK_WRITE_TIMEOUT_MS,
  paceHeights: true,
};

/** A block write limit shorter than this is refused (see parseConsensusConfig). */
export const MIN_BLOCK_WRITE_TIMEOUT_MS = 1_000;

const KNOWN = Object.keys(DEFAULT_CONSENSUS_CONFIG).join(', ');

/** The settings of a config file's `"consensus"` object (absent: the defaults); throws saying why not. */
export function parseConsensusConfig(value: unknown): Partial<ConsensusConfig> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TypeError(`consensus must be an object, like {"paceHeights": false}`);
  const config: Partial<ConsensusConfig> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'blockWriteTimeoutMs') {
      // Below a second a merely slow fsync would count as a hung disk and stop the node.
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < MIN_BLOCK_WRITE_TIMEOUT_MS)
        throw new TypeError(
          `consensus.${key} must be a positive integer (ms) of at least ${MIN_BLOCK_WRITE_TIMEOUT_MS}`,
        );
      config.blockWriteTimeoutMs = v;
    } else if (key === 'paceHeights') {
      if (typeof v !== 'boolean')
        throw new TypeError(`"consensus.paceHeights" must be true or false, not ${JSON.stringify(v)}`);
      config.paceHeights = v;
    } else {
      throw new TypeError(`unknown setting "consensus.${key}": not a consensus setting (known: ${KNOWN})`);
    }
  }
  return config;
}
