export * from './agent.js';
export * from './signers.js';
export * from './tpm-signer.js';
