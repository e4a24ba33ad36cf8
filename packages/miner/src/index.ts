/**
 * @unc/miner: what runs beside a chip. The TPM 2.0 driver and software-TPM runner that produce
 * POCI evidence (§4), and the vendor tooling that certifies chips on test and dev networks.
 */

export * from './agent/index.js';
export * as der from './asn1/der.js';
export * from './provider/index.js';
export * from './tpm/index.js';
export * from './vendor/index.js';
