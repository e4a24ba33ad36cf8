export * from './actions.js';
export * from './batch.js';
export * from './execute.js';
export * from './params.js';
export * from './receipt.js';
export * from './request.js';
export * from './settle.js';
export * from './state.js';
