export * from './agent.js';
export * from './signers.js';
