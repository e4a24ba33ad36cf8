export * from './chain.js';
export * from './dev.js';
export * from './explorer.js';
export * from './log.js';
export * from './mempool.js';
export * from './metrics.js';
export * from './node.js';
export * from './storage/db.js';
