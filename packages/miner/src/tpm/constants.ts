/**
 * The TPM 2.0 numbers this driver uses (TPM 2.0 Library, Part 2: Structures). Only what the
 * miner needs is listed; every value is the one from the specification's tables.
 */

/** TPM_ST: structure tags. */
export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
} as const;

/** TPM_CC: command codes. */
export const TPM_CC = {
  EvictControl: 0x120,
  CreatePrimary: 0x131,
  Startup: 0x144,
  Shutdown: 0x145,
  GetTime: 0x14c,
  NV_Read: 0x14e,
  Create: 0x153,
  Load: 0x157,
  Quote: 0x158,
  FlushContext: 0x165,
  NV_ReadPublic: 0x169,
  ReadPublic: 0x173,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  PCR_Read: 0x17e,
} as const;

/** Command names by code, for error messages. */
export const TPM_CC_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(TPM_CC).map(([name, code]) => [code, `TPM2_${name}`]),
);

/** TPM_RH / TPM_RS: permanent handles. */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

/** TPM_HT: the top byte of a handle says what it refers to. */
export const TPM_HT = {
  NV_INDEX: 0x01,
  HMAC_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
} as const;

/** TPM_ALG_ID. */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAPSS: 0x0016,
  ECDSA: 0x0018,
  ECC: 0x0023,
  CFB: 0x0043,
} as const;

/** TPM_ECC_CURVE. */
export const TPM_ECC = {
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
} as const;

/** TPM_SU: Startup / Shutdown types. */
export const TPM_SU = {
  CLEAR: 0x0000,
  STATE: 0x0001,
} as const;

/** TPM_CAP. */
export const TPM_CAP = {
  HANDLES: 0x00000001,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
} as const;

/** TPM_PT: fixed properties (PT_FIXED = 0x100). */
export const TPM_PT = {
  FAMILY_INDICATOR: 0x100,
  REVISION: 0x102,
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  VENDOR_STRING_2: 0x107,
  VENDOR_STRING_3: 0x108,
  VENDOR_STRING_4: 0x109,
  FIRMWARE_VERSION_1: 0x10b,
  FIRMWARE_VERSION_2: 0x10c,
  MAX_COMMAND_SIZE: 0x11e,
  MAX_RESPONSE_SIZE: 0x11f,
  MAX_DIGEST: 0x120,
} as const;

/** TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** The TPMS_ATTEST magic, TPM_GENERATED_VALUE: proves the structure was made inside a TPM. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** Digest sizes of the hash algorithms the driver understands. */
export const DIGEST_SIZES: ReadonlyMap<number, number> = new Map([
  [TPM_ALG.SHA1, 20],
  [TPM_ALG.SHA256, 32],
  [TPM_ALG.SHA384, 48],
  [TPM_ALG.SHA512, 64],
]);

/** node:crypto's names for the same hash algorithms. */
export const HASH_NAMES: ReadonlyMap<number, string> = new Map([
  [TPM_ALG.SHA1, 'sha1'],
  [TPM_ALG.SHA256, 'sha256'],
  [TPM_ALG.SHA384, 'sha384'],
  [TPM_ALG.SHA512, 'sha512'],
]);

export function hashAlgFromName(name: string): number {
  for (const [alg, n] of HASH_NAMES) if (n === name) return alg;
  throw new RangeError(`unsupported hash algorithm: ${name}`);
}
