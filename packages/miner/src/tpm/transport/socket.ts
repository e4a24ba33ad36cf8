/**
 * swtpm's TCP interface: the server port carries the raw TPM command stream (what a kernel driver
 * would write to the chip), and the separate control port carries swtpm's own commands
 * (tpm_ioctl.h CMD_*), of which the miner needs CMD_INIT: the "power on" that a real platform
 * performs before firmware sends TPM2_Startup.
 */
import { createConnection, type Socket } from 'node:net';
import { concatBytes } from '@unc/core';
import { TpmProtocolError } from '../errors.js';
import { responseLength, type TpmTransport } from './transport.js';

export interface SwtpmSocketOptions {
  readonly host?: string;
  readonly port: number;
  /** Milliseconds to wait for a response; RSA key generation in a software TPM can take seconds. */
  readonly timeoutMs?: number;
}

interface Waiter {
  resolve(response: Uint8Array): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

function connect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TpmProtocolError(`timed out connecting to ${host}:${port}`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new TpmProtocolError(`cannot connect to TPM at ${host}:${port}: ${err.message}`, { cause: err }),
      );
    });
  });
}

/** The raw TPM command stream on swtpm's server port. Keeps one connection open between commands. */
export class SwtpmSocketTransport implements TpmTransport {
  readonly host: string;
  readonly port: number;
  private readonly timeoutMs: number;
  private socket: Socket | null = null;
  private received: Uint8Array = new Uint8Array(0);
  private waiter: Waiter | null = null;

  constructor(opts: SwtpmSocketOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    if (this.waiter) throw new TpmProtocolError('a TPM command is already in flight on this transport');
    const socket = this.socket ?? (await this.open());
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          new TpmProtocolError(`no TPM response within ${this.timeoutMs} ms from ${this.host}:${this.port}`),
        );
      }, this.timeoutMs);
      this.waiter = { resolve, reject, timer };
      this.received = new Uint8Array(0);
      socket.write(command);
    });
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      // swtpm may not close its side promptly; do not let a polite close hang the caller.
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  private async open(): Promise<Socket> {
    const socket = await connect(this.host, this.port, this.timeoutMs);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) =>
      this.fail(new TpmProtocolError(`TPM connection error: ${err.message}`, { cause: err })),
    );
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
      this.fail(new TpmProtocolError(`TPM at ${this.host}:${this.port} closed the connection`));
    });
    this.socket = socket;
    return socket;
  }

  private onData(chunk: Buffer): void {
    this.received = concatBytes(this.received, new Uint8Array(chunk));
    const waiter = this.waiter;
    if (!waiter) return;
    let size: number | undefined;
    try {
      size = responseLength(this.received);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (size === undefined || this.received.length < size) return;
    if (this.received.length > size) {
      this.fail(new TpmProtocolError(`TPM sent ${this.received.length - size} bytes beyond its response`));
      return;
    }
    const response = this.received;
    this.received = new Uint8Array(0);
    this.waiter = null;
    clearTimeout(waiter.timer);
    waiter.resolve(response);
  }

  /** A broken stream cannot be resynchronised, so any failure also drops the connection. */
  private fail(err: Error): void {
    const waiter = this.waiter;
    this.waiter = null;
    this.received = new Uint8Array(0);
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
  }
}

/** swtpm control channel command codes (swtpm's tpm_ioctl.h, "commands used by the non-CUSE TPMs"). */
export const SWTPM_CMD = {
  GET_CAPABILITY: 0x01,
  INIT: 0x02,
  SHUTDOWN: 0x03,
  GET_TPMESTABLISHED: 0x04,
  STORE_VOLATILE: 0x0a,
  STOP: 0x0e,
} as const;

/** swtpm's control channel: one connection per command, big-endian, the response starting with a u32 result. */
export class SwtpmControl {
  readonly host: string;
  readonly port: number;
  private readonly timeoutMs: number;

  constructor(opts: SwtpmSocketOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /**
   * _TPM_Init: powers the TPM on (swtpm starts powered off unless told not-need-init). With
   * `deleteVolatile`, any saved volatile state is discarded instead of resumed.
   */
  async init(opts: { deleteVolatile?: boolean } = {}): Promise<void> {
    const flags = new Uint8Array(4);
    new DataView(flags.buffer).setUint32(0, opts.deleteVolatile ? 1 : 0);
    await this.command(SWTPM_CMD.INIT, flags, 4);
  }

  /** Stops the TPM without ending the process; CMD_INIT starts it again. */
  async stop(): Promise<void> {
    await this.command(SWTPM_CMD.STOP, new Uint8Array(0), 4);
  }

  /** Stops the TPM and makes swtpm exit cleanly. */
  async shutdown(): Promise<void> {
    await this.command(SWTPM_CMD.SHUTDOWN, new Uint8Array(0), 4);
  }

  /** Writes the TPM's volatile state to the state directory, to be resumed by the next CMD_INIT. */
  async storeVolatile(): Promise<void> {
    await this.command(SWTPM_CMD.STORE_VOLATILE, new Uint8Array(0), 4);
  }

  /** Sends one control command and returns its response after the result word. */
  async command(code: number, payload: Uint8Array, responseSize: number): Promise<Uint8Array> {
    const socket = await connect(this.host, this.port, this.timeoutMs);
    try {
      const request = new Uint8Array(4 + payload.length);
      new DataView(request.buffer).setUint32(0, code);
      request.set(payload, 4);
      const response = await new Promise<Uint8Array>((resolve, reject) => {
        let received: Uint8Array = new Uint8Array(0);
        const timer = setTimeout(
          () => reject(new TpmProtocolError(`swtpm control command ${code} timed out`)),
          this.timeoutMs,
        );
        const done = (err: Error | null) => {
          clearTimeout(timer);
          socket.removeAllListeners('data');
          if (err) reject(err);
          else resolve(received);
        };
        socket.on('data', (chunk: Buffer) => {
          received = concatBytes(received, new Uint8Array(chunk));
          if (received.length >= responseSize) done(null);
        });
        socket.once('error', (err) =>
          done(new TpmProtocolError(`swtpm control channel: ${err.message}`, { cause: err })),
        );
        socket.once('close', () => {
          if (received.length < responseSize)
            done(new TpmProtocolError(`swtpm control channel closed after ${received.length} bytes`));
        });
        socket.write(request);
      });
      const result = new DataView(response.buffer, response.byteOffset).getUint32(0);
      if (result !== 0) {
        throw new TpmProtocolError(
          `swtpm control command ${code} failed with TPM result 0x${result.toString(16)}`,
        );
      }
      return response.subarray(4, responseSize);
    } finally {
      socket.destroy();
    }
  }
}
