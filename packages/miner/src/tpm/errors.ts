/**
 * TPM response codes as errors a person can act on. The numbering follows TPM 2.0 Part 2
 * §6.6 (TPM_RC): format-zero codes (RC_VER1, RC_WARN) are plain numbers; format-one codes carry
 * the number of the handle, session or parameter the TPM objected to, which is most of what one
 * needs to know to fix a malformed command.
 */
import { TPM_CC_NAMES } from './constants.js';

const RC_VER1 = 0x100;
const RC_FMT1 = 0x080;
const RC_WARN = 0x900;

const FORMAT_ZERO: ReadonlyMap<number, [string, string]> = new Map([
  [0x000, ['TPM_RC_SUCCESS', 'success']],
  [0x01e, ['TPM_RC_BAD_TAG', 'the command tag is not valid (is this a TPM 2.0 device?)']],
  [RC_VER1 + 0x000, ['TPM_RC_INITIALIZE', 'TPM not initialized by TPM2_Startup or already initialized']],
  [RC_VER1 + 0x001, ['TPM_RC_FAILURE', 'the TPM is in failure mode']],
  [RC_VER1 + 0x003, ['TPM_RC_SEQUENCE', 'improper use of a sequence handle']],
  [RC_VER1 + 0x00b, ['TPM_RC_PRIVATE', 'not currently used']],
  [RC_VER1 + 0x019, ['TPM_RC_HMAC', 'not currently used']],
  [RC_VER1 + 0x020, ['TPM_RC_DISABLED', 'the command is disabled']],
  [RC_VER1 + 0x021, ['TPM_RC_EXCLUSIVE', 'command failed because audit sequence required exclusivity']],
  [RC_VER1 + 0x024, ['TPM_RC_AUTH_TYPE', 'authorization handle is not correct for the command']],
  [RC_VER1 + 0x025, ['TPM_RC_AUTH_MISSING', 'the command requires an authorization session']],
  [RC_VER1 + 0x026, ['TPM_RC_POLICY', 'policy failure in math operation or an invalid authPolicy value']],
  [RC_VER1 + 0x027, ['TPM_RC_PCR', 'PCR check fail']],
  [RC_VER1 + 0x028, ['TPM_RC_PCR_CHANGED', 'PCR have changed since checked']],
  [RC_VER1 + 0x02d, ['TPM_RC_UPGRADE', 'the TPM is in field upgrade mode']],
  [RC_VER1 + 0x02e, ['TPM_RC_TOO_MANY_CONTEXTS', 'context ID counter is at maximum']],
  [RC_VER1 + 0x02f, ['TPM_RC_AUTH_UNAVAILABLE', 'authValue or authPolicy is not available']],
  [RC_VER1 + 0x030, ['TPM_RC_REBOOT', 'a _TPM_Init and Startup(CLEAR) is required']],
  [
    RC_VER1 + 0x031,
    ['TPM_RC_UNBALANCED', 'the protection algorithms (hash and symmetric) are not reasonably balanced'],
  ],
  [RC_VER1 + 0x042, ['TPM_RC_COMMAND_SIZE', 'command size value is inconsistent with its contents']],
  [RC_VER1 + 0x043, ['TPM_RC_COMMAND_CODE', 'command code not supported']],
  [RC_VER1 + 0x044, ['TPM_RC_AUTHSIZE', 'authorization size is out of range or inconsistent']],
  [RC_VER1 + 0x045, ['TPM_RC_AUTH_CONTEXT', 'use of an authorization session with a context command']],
  [RC_VER1 + 0x046, ['TPM_RC_NV_RANGE', 'NV offset+size is out of range']],
  [RC_VER1 + 0x047, ['TPM_RC_NV_SIZE', 'requested allocation size is larger than allowed']],
  [RC_VER1 + 0x048, ['TPM_RC_NV_LOCKED', 'NV access locked']],
  [RC_VER1 + 0x049, ['TPM_RC_NV_AUTHORIZATION', 'NV access authorization fails in command actions']],
  [RC_VER1 + 0x04a, ['TPM_RC_NV_UNINITIALIZED', 'an NV Index is used before being initialized']],
  [RC_VER1 + 0x04b, ['TPM_RC_NV_SPACE', 'insufficient space for NV allocation']],
  [RC_VER1 + 0x04c, ['TPM_RC_NV_DEFINED', 'NV Index or persistent object already defined']],
  [RC_VER1 + 0x050, ['TPM_RC_BAD_CONTEXT', 'context in TPM2_ContextLoad() is not valid']],
  [RC_VER1 + 0x051, ['TPM_RC_CPHASH', 'cpHash value already set or not correct for use']],
  [RC_VER1 + 0x052, ['TPM_RC_PARENT', 'handle for parent is not a valid parent']],
  [RC_VER1 + 0x053, ['TPM_RC_NEEDS_TEST', 'some function needs testing']],
  [
    RC_VER1 + 0x054,
    ['TPM_RC_NO_RESULT', 'an internal function cannot process a request due to an unspecified problem'],
  ],
  [RC_VER1 + 0x055, ['TPM_RC_SENSITIVE', 'the sensitive area did not unmarshal correctly after decryption']],
  [RC_WARN + 0x001, ['TPM_RC_CONTEXT_GAP', 'gap for context ID is too large']],
  [RC_WARN + 0x002, ['TPM_RC_OBJECT_MEMORY', 'out of memory for object contexts (flush transient objects)']],
  [RC_WARN + 0x003, ['TPM_RC_SESSION_MEMORY', 'out of memory for session contexts']],
  [
    RC_WARN + 0x004,
    ['TPM_RC_MEMORY', 'out of shared object/session memory or need space for internal operations'],
  ],
  [RC_WARN + 0x005, ['TPM_RC_SESSION_HANDLES', 'out of session handles']],
  [RC_WARN + 0x006, ['TPM_RC_OBJECT_HANDLES', 'out of object handles']],
  [RC_WARN + 0x007, ['TPM_RC_LOCALITY', 'bad locality']],
  [RC_WARN + 0x008, ['TPM_RC_YIELDED', 'the TPM has suspended operation on the command']],
  [RC_WARN + 0x009, ['TPM_RC_CANCELED', 'the command was canceled']],
  [RC_WARN + 0x00a, ['TPM_RC_TESTING', 'TPM is performing self-tests']],
  [RC_WARN + 0x020, ['TPM_RC_NV_RATE', 'the TPM is rate-limiting accesses to prevent wearout of NV']],
  [
    RC_WARN + 0x021,
    ['TPM_RC_LOCKOUT', 'authorizations for objects subject to DA protection are not allowed (lockout mode)'],
  ],
  [RC_WARN + 0x022, ['TPM_RC_RETRY', 'the TPM was not able to start the command']],
  [
    RC_WARN + 0x023,
    ['TPM_RC_NV_UNAVAILABLE', 'the command may require writing of NV and NV is not current accessible'],
  ],
]);

const FORMAT_ONE: ReadonlyMap<number, [string, string]> = new Map([
  [RC_FMT1 + 0x001, ['TPM_RC_ASYMMETRIC', 'asymmetric algorithm not supported or not correct']],
  [RC_FMT1 + 0x002, ['TPM_RC_ATTRIBUTES', 'inconsistent attributes']],
  [RC_FMT1 + 0x003, ['TPM_RC_HASH', 'hash algorithm not supported or not appropriate']],
  [RC_FMT1 + 0x004, ['TPM_RC_VALUE', 'value is out of range or is not correct for the context']],
  [RC_FMT1 + 0x005, ['TPM_RC_HIERARCHY', 'hierarchy is not enabled or is not correct for the use']],
  [RC_FMT1 + 0x007, ['TPM_RC_KEY_SIZE', 'key size is not supported']],
  [RC_FMT1 + 0x008, ['TPM_RC_MGF', 'mask generation function not supported']],
  [RC_FMT1 + 0x009, ['TPM_RC_MODE', 'mode of operation not supported']],
  [RC_FMT1 + 0x00a, ['TPM_RC_TYPE', 'the type of the value is not appropriate for the use']],
  [RC_FMT1 + 0x00b, ['TPM_RC_HANDLE', 'the handle is not correct for the use']],
  [
    RC_FMT1 + 0x00c,
    ['TPM_RC_KDF', 'unsupported key derivation function or function not appropriate for use'],
  ],
  [RC_FMT1 + 0x00d, ['TPM_RC_RANGE', 'value was out of allowed range']],
  [RC_FMT1 + 0x00e, ['TPM_RC_AUTH_FAIL', 'the authorization HMAC check failed and DA counter incremented']],
  [RC_FMT1 + 0x00f, ['TPM_RC_NONCE', 'invalid nonce size or nonce value mismatch']],
  [RC_FMT1 + 0x010, ['TPM_RC_PP', 'authorization requires assertion of PP']],
  [RC_FMT1 + 0x012, ['TPM_RC_SCHEME', 'unsupported or incompatible scheme']],
  [RC_FMT1 + 0x015, ['TPM_RC_SIZE', 'structure is the wrong size']],
  [
    RC_FMT1 + 0x016,
    ['TPM_RC_SYMMETRIC', 'unsupported symmetric algorithm or key size, or not appropriate for instance'],
  ],
  [RC_FMT1 + 0x017, ['TPM_RC_TAG', 'incorrect structure tag']],
  [RC_FMT1 + 0x018, ['TPM_RC_SELECTOR', 'union selector is incorrect']],
  [
    RC_FMT1 + 0x01a,
    [
      'TPM_RC_INSUFFICIENT',
      'the TPM was unable to unmarshal a value because there were not enough octets in the input buffer',
    ],
  ],
  [RC_FMT1 + 0x01b, ['TPM_RC_SIGNATURE', 'the signature is not valid']],
  [RC_FMT1 + 0x01c, ['TPM_RC_KEY', 'key fields are not compatible with the selected use']],
  [RC_FMT1 + 0x01d, ['TPM_RC_POLICY_FAIL', 'a policy check failed']],
  [RC_FMT1 + 0x01f, ['TPM_RC_INTEGRITY', 'integrity check failed']],
  [RC_FMT1 + 0x020, ['TPM_RC_TICKET', 'invalid ticket']],
  [RC_FMT1 + 0x021, ['TPM_RC_RESERVED_BITS', 'reserved bits not set to zero as required']],
  [RC_FMT1 + 0x022, ['TPM_RC_BAD_AUTH', 'authorization failure without DA implications']],
  [RC_FMT1 + 0x023, ['TPM_RC_EXPIRED', 'the policy has expired']],
  [
    RC_FMT1 + 0x024,
    ['TPM_RC_POLICY_CC', 'the commandCode in the policy is not the commandCode of the command'],
  ],
  [
    RC_FMT1 + 0x025,
    ['TPM_RC_BINDING', 'public and sensitive portions of an object are not cryptographically bound'],
  ],
  [RC_FMT1 + 0x026, ['TPM_RC_CURVE', 'curve not supported']],
  [RC_FMT1 + 0x027, ['TPM_RC_ECC_POINT', 'point is not on the required curve']],
]);

/** What a response code means, split into its parts. */
export interface DecodedResponseCode {
  /** The code with the handle/session/parameter number removed (e.g. 0x08b for TPM_RC_HANDLE). */
  readonly base: number;
  readonly name: string;
  readonly description: string;
  readonly warning: boolean;
  /** For format-one codes: which handle, session or parameter (1-based) was at fault. */
  readonly subject?: { kind: 'handle' | 'session' | 'parameter'; index: number };
}

export function decodeResponseCode(rc: number): DecodedResponseCode {
  if (rc & RC_FMT1) {
    const base = RC_FMT1 + (rc & 0x3f);
    const [name, description] = FORMAT_ONE.get(base) ?? [
      `TPM_RC_FMT1_${hex(base, 3)}`,
      'unknown format-one error',
    ];
    let subject: DecodedResponseCode['subject'];
    if (rc & 0x40) subject = { kind: 'parameter', index: (rc >> 8) & 0xf };
    else if (rc & 0x800) subject = { kind: 'session', index: (rc >> 8) & 0x7 };
    else if ((rc >> 8) & 0x7) subject = { kind: 'handle', index: (rc >> 8) & 0x7 };
    return subject
      ? { base, name, description, warning: false, subject }
      : { base, name, description, warning: false };
  }
  // Bit 10 marks vendor-defined codes and bits 16+ are the TSS software layers, not the TPM.
  if (rc & 0x400)
    return { base: rc, name: 'TPM_RC_VENDOR', description: 'vendor-defined error', warning: false };
  const known = FORMAT_ZERO.get(rc);
  const warning = (rc & RC_WARN) === RC_WARN;
  if (known) return { base: rc, name: known[0], description: known[1], warning };
  return { base: rc, name: `TPM_RC_${hex(rc, 3)}`, description: 'unknown response code', warning };
}

function hex(n: number, width: number): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

/** A TPM command that the TPM answered with an error response code. */
export class TpmError extends Error {
  readonly rc: number;
  readonly rcName: string;
  readonly commandCode: number;
  readonly decoded: DecodedResponseCode;

  constructor(commandCode: number, rc: number) {
    const decoded = decodeResponseCode(rc);
    const command = TPM_CC_NAMES.get(commandCode) ?? `TPM command ${hex(commandCode, 3)}`;
    const where = decoded.subject ? `, ${decoded.subject.kind} ${decoded.subject.index}` : '';
    super(`${command} failed: ${decoded.name} (rc ${hex(rc, 8)}${where}): ${decoded.description}`);
    this.name = 'TpmError';
    this.rc = rc;
    this.rcName = decoded.name;
    this.commandCode = commandCode;
    this.decoded = decoded;
  }
}

/**
 * The bytes exchanged with the TPM do not follow the protocol (truncated, wrong tag, wrong
 * size), or the transport failed. Distinct from TpmError because the TPM said nothing usable.
 */
export class TpmProtocolError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TpmProtocolError';
  }
}
