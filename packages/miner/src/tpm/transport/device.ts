/**
 * A TPM character device: /dev/tpmrm0 (the kernel's resource manager, which the miner should use
 * so that other TPM users' transient objects never collide with its own) or /dev/tpm0. The
 * kernel interface is write one whole command, then read one whole response.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { TpmProtocolError } from '../errors.js';
import { responseLength, type TpmTransport } from './transport.js';

export interface DeviceTransportOptions {
  readonly path?: string;
}

export class DeviceTransport implements TpmTransport {
  readonly path: string;
  private handle: FileHandle | null = null;
  private busy = false;

  constructor(opts: DeviceTransportOptions = {}) {
    this.path = opts.path ?? '/dev/tpmrm0';
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    if (this.busy) throw new TpmProtocolError('a TPM command is already in flight on this device');
    this.busy = true;
    try {
      const handle = this.handle ?? (await this.open());
      // position null: a character device has no file position to seek to.
      const { bytesWritten } = await handle.write(command, 0, command.length, null);
      if (bytesWritten !== command.length) {
        throw new TpmProtocolError(
          `${this.path} accepted ${bytesWritten} of ${command.length} command bytes`,
        );
      }
      let buffer = new Uint8Array(4096);
      let received = 0;
      for (;;) {
        const size = responseLength(buffer.subarray(0, received));
        if (size !== undefined && received >= size) {
          if (received > size) throw new TpmProtocolError(`${this.path} returned bytes beyond its response`);
          return buffer.slice(0, size);
        }
        if (size !== undefined && size > buffer.length) {
          const bigger = new Uint8Array(size);
          bigger.set(buffer.subarray(0, received));
          buffer = bigger;
        }
        const { bytesRead } = await handle.read(buffer, received, buffer.length - received, null);
        if (bytesRead === 0)
          throw new TpmProtocolError(`${this.path} ended the response after ${received} bytes`);
        received += bytesRead;
      }
    } catch (err) {
      // After a failed exchange the kernel may still hold our response; reopening discards it.
      await this.close();
      if (err instanceof TpmProtocolError) throw err;
      throw new TpmProtocolError(`TPM device ${this.path}: ${(err as Error).message}`, { cause: err });
    } finally {
      this.busy = false;
    }
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close().catch(() => undefined);
  }

  private async open(): Promise<FileHandle> {
    this.handle = await open(this.path, 'r+');
    return this.handle;
  }
}
