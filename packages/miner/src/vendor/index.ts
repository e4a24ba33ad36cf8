export * from './ca.js';
export * from './pem.js';
export * from './provision.js';
export * from './revocation.js';
export * from './x509.js';
