/**
 * A TPM 2.0 chip: every answer is a TPM2_Quote by the chip's attestation key with the challenge
 * as qualifying data, so the TPM's own clock, resetCount and restartCount travel with it (a reboot
 * is visible on chain). The AK is re-created from its template for each quote (deterministic in the
 * endorsement hierarchy) and flushed afterwards, so no handle outlives a request.
 */
import { type HeartbeatEvidence, parseCertificate, type RegistrationEvidence, tpm2ChipId } from '@unc/core';
import { Tpm } from '../tpm/tpm.js';
import { DeviceTransport } from '../tpm/transport/device.js';
import { SwtpmSocketTransport } from '../tpm/transport/socket.js';
import type { TpmTransport } from '../tpm/transport/transport.js';
import type { ChipSigner } from './signers.js';

export type TpmEndpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'device'; path: string };

export function parseTpmEndpoint(text: string): TpmEndpoint {
  if (text.startsWith('/')) return { kind: 'device', path: text };
  const m = /^([^:]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535)
    throw new Error(`invalid TPM endpoint "${text}": expected host:port or /dev/tpmrm0`);
  return { kind: 'tcp', host: m[1]!, port: Number(m[2]) };
}

export interface TpmChipIdentity {
  vendorId: string;
  /** DER of the AK certificate the vendor issued for this TPM. */
  akCertificate: Uint8Array;
  /** DER of the issuing chain above it (intermediate first; the root may be left out). */
  chain: Uint8Array[];
}

export class TpmSigner implements ChipSigner {
  readonly profile = 'tpm2' as const;
  readonly label: string;
  private tpm: Tpm | null = null;

  constructor(
    private readonly endpoint: TpmEndpoint,
    private readonly identity: TpmChipIdentity,
    label?: string,
  ) {
    this.label =
      label ?? (endpoint.kind === 'tcp' ? `tpm ${endpoint.host}:${endpoint.port}` : `tpm ${endpoint.path}`);
  }

  async chipId(): Promise<Uint8Array> {
    return tpm2ChipId(parseCertificate(this.identity.akCertificate)).chipId;
  }

  /** Connects (again, after a failure or a TPM restart) and makes sure the TPM is started. */
  private async connect(): Promise<Tpm> {
    if (this.tpm) return this.tpm;
    const transport: TpmTransport =
      this.endpoint.kind === 'tcp'
        ? new SwtpmSocketTransport({ host: this.endpoint.host, port: this.endpoint.port, timeoutMs: 10_000 })
        : new DeviceTransport({ path: this.endpoint.path });
    const tpm = new Tpm(transport);
    try {
      await tpm.startup('clear');
    } catch (err) {
      await tpm.close().catch(() => undefined);
      throw err;
    }
    this.tpm = tpm;
    return tpm;
  }

  private async quote(message: Uint8Array): Promise<{ attest: Uint8Array; signature: Uint8Array }> {
    const tpm = await this.connect();
    try {
      return await tpm.withAk({}, (ak) => tpm.quote(ak.handle, message));
    } catch (err) {
      // The next call reconnects: the TPM may have been restarted or the socket dropped.
      this.tpm = null;
      await tpm.close().catch(() => undefined);
      throw err;
    }
  }

  async registrationEvidence(message: Uint8Array): Promise<RegistrationEvidence> {
    const { attest, signature } = await this.quote(message);
    return {
      type: 'tpm2',
      vendorId: this.identity.vendorId,
      attest,
      signature,
      akCertificate: this.identity.akCertificate,
      chain: this.identity.chain,
    };
  }

  async answer(message: Uint8Array): Promise<HeartbeatEvidence> {
    const { attest, signature } = await this.quote(message);
    return { type: 'tpm2', attest, signature };
  }

  async close(): Promise<void> {
    await this.tpm?.close().catch(() => undefined);
    this.tpm = null;
  }
}
