export * from './agent.js';
export * from './fee-budget-file.js';
export * from './signers.js';
export * from './tpm-signer.js';
