/**
 * Evidence as it travels in transactions. Registration evidence carries what establishes trust
 * (certificate chains); heartbeat evidence only what proves the registered key signed the
 * challenge, since the chain already knows the key.
 */
import { type Codec, bytes, list, struct, taggedUnion } from '../encoding/codec.js';
import { publicKey, signature64 } from '../encoding/primitives.js';
import { idCodec } from './registry.js';

const der = bytes(8192, 'der');

export type RegistrationEvidence =
  | { type: 'devSoft'; publicKey: Uint8Array; modelId: string; signature: Uint8Array }
  | { type: 'tpm2'; attest: Uint8Array; signature: Uint8Array; akCertificate: Uint8Array; chain: Uint8Array[] }
  | { type: 'nvidiaSpdm'; request: Uint8Array; response: Uint8Array; chain: Uint8Array[] }
  | { type: 'rsaAllowlist'; publicKey: Uint8Array; signature: Uint8Array };

export const registrationEvidenceCodec: Codec<RegistrationEvidence> = taggedUnion<RegistrationEvidence>(
  'RegistrationEvidence',
  {
    devSoft: [1, struct('DevSoftRegistration', { publicKey, modelId: idCodec, signature: signature64 })],
    tpm2: [
      2,
      struct('Tpm2Registration', {
        attest: bytes(2048, 'attest'),
        signature: bytes(1024, 'signature'),
        akCertificate: der,
        chain: list(der, 6, 'chain'),
      }),
    ],
    nvidiaSpdm: [
      3,
      struct('NvidiaSpdmRegistration', {
        request: bytes(1024, 'request'),
        response: bytes(16384, 'response'),
        chain: list(der, 8, 'chain'),
      }),
    ],
    rsaAllowlist: [4, struct('RsaRegistration', { publicKey: bytes(1024, 'publicKey'), signature: bytes(512, 'signature') })],
  },
);

export type HeartbeatEvidence =
  | { type: 'devSoft'; signature: Uint8Array }
  | { type: 'tpm2'; attest: Uint8Array; signature: Uint8Array }
  | { type: 'nvidiaSpdm'; request: Uint8Array; response: Uint8Array }
  | { type: 'rsaAllowlist'; signature: Uint8Array };

export const heartbeatEvidenceCodec: Codec<HeartbeatEvidence> = taggedUnion<HeartbeatEvidence>('HeartbeatEvidence', {
  devSoft: [1, struct('DevSoftHeartbeat', { signature: signature64 })],
  tpm2: [2, struct('Tpm2Heartbeat', { attest: bytes(2048, 'attest'), signature: bytes(1024, 'signature') })],
  nvidiaSpdm: [3, struct('NvidiaSpdmHeartbeat', { request: bytes(1024, 'request'), response: bytes(16384, 'response') })],
  rsaAllowlist: [4, struct('RsaHeartbeat', { signature: bytes(512, 'signature') })],
});

export const EVIDENCE_PROFILE = {
  devSoft: 'dev-soft',
  tpm2: 'tpm2',
  nvidiaSpdm: 'nvidia-spdm',
  rsaAllowlist: 'rsa2048-allowlist',
} as const;
