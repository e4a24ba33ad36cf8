export * from './client.js';
export * from './views.js';
export * from './transactions.js';
export * from './proofs.js';
