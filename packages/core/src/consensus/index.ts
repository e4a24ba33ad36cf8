export * from './beacon.js';
export * from './messages.js';
export * from './privval.js';
export * from './rng.js';
export * from './sim.js';
export * from './tendermint.js';
export * from './validators.js';
export * from './vote-set.js';
