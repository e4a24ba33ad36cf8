export * from './gateway.js';
export * from './policy.js';
export * from './store.js';
