/**
 * How command bytes reach a TPM. A transport carries one marshalled command and returns the one
 * marshalled response; it knows nothing of what the bytes mean beyond the response header's size
 * field, which is how a byte stream is cut into responses.
 */
import { TpmProtocolError } from '../errors.js';

export interface TpmTransport {
  /** Sends one complete command and resolves with its complete response. One at a time. */
  send(command: Uint8Array): Promise<Uint8Array>;
  /** Releases the connection or file handle; a later send may reopen it. */
  close(): Promise<void>;
}

/** Every TPM 2.0 response starts with tag (u16), responseSize (u32), responseCode (u32). */
export const RESPONSE_HEADER_SIZE = 10;

// The largest buffer any TPM reports (TPM_PT_MAX_RESPONSE_SIZE) is a few KiB; a size far beyond
// that means the stream is out of step, and waiting for those bytes would hang forever.
const MAX_RESPONSE_SIZE = 1 << 20;

/** The full size of the response that `received` starts, or undefined while the header is incomplete. */
export function responseLength(received: Uint8Array): number | undefined {
  if (received.length < RESPONSE_HEADER_SIZE) return undefined;
  const size = new DataView(received.buffer, received.byteOffset, received.byteLength).getUint32(2);
  if (size < RESPONSE_HEADER_SIZE || size > MAX_RESPONSE_SIZE) {
    throw new TpmProtocolError(`TPM response header claims ${size} bytes; the stream is out of step`);
  }
  return size;
}
