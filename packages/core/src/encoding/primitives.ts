/** Fixed-size protocol primitives shared by every structure. */
import { bytesN, string } from './codec.js';

export const MAX_CHAIN_ID_BYTES = 64;
export const address = bytesN(20, 'address');
export const hash32 = bytesN(32, 'hash');
export const publicKey = bytesN(32, 'publicKey');
export const signature64 = bytesN(64, 'signature');
export const chainIdCodec = string(MAX_CHAIN_ID_BYTES, 'chainId');
