/**
 * Evidence as it travels in transactions. Registration evidence is the attestation module's
 * `Evidence` (it carries what establishes trust: certificate chains, the vendor); heartbeat
 * evidence only proves that the registered key signed the challenge, since the chain already
 * knows the key.
 */
import { type Evidence, evidenceCodec } from '../attestation/index.js';
import { bytes, type Codec, struct, taggedUnion } from '../encoding/codec.js';
import { signature64 } from '../encoding/primitives.js';

export type RegistrationEvidence = Evidence;
export const registrationEvidenceCodec: Codec<RegistrationEvidence> = evidenceCodec;

export type HeartbeatEvidence =
  | { type: 'tpm2'; attest: Uint8Array; signature: Uint8Array }
  | { type: 'nvidia-spdm'; request: Uint8Array; response: Uint8Array }
  | { type: 'rsa2048-allowlist'; signature: Uint8Array }
  | { type: 'dev-soft'; signature: Uint8Array };

export const heartbeatEvidenceCodec: Codec<HeartbeatEvidence> = taggedUnion<HeartbeatEvidence>(
  'HeartbeatEvidence',
  {
    tpm2: [
      1,
      struct('Tpm2Heartbeat', { attest: bytes(2048, 'attest'), signature: bytes(1024, 'signature') }),
    ],
    'nvidia-spdm': [
      2,
      struct('NvidiaSpdmHeartbeat', { request: bytes(1024, 'request'), response: bytes(16384, 'response') }),
    ],
    'rsa2048-allowlist': [3, struct('RsaHeartbeat', { signature: bytes(512, 'signature') })],
    'dev-soft': [4, struct('DevSoftHeartbeat', { signature: signature64 })],
  },
);
