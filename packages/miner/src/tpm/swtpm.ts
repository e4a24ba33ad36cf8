/**
 * Runs a real software TPM (`swtpm socket --tpm2`) for development networks and tests. The TPM's
 * identity (its endorsement seed, hence its AK) lives in the state directory: keep the directory
 * and a restarted swtpm is the same chip, with resetCount showing that it rebooted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SwtpmControl, SwtpmSocketTransport } from './transport/socket.js';

export interface SwtpmOptions {
  /** Existing state directory to reuse (the same TPM identity); a fresh temporary one otherwise. */
  readonly stateDir?: string;
  /**
   * Keep the state directory on dispose. Defaults to false for a directory this class created and
   * true for one the caller passed in, so nothing the caller owns is deleted unasked.
   */
  readonly keepState?: boolean;
  /** The swtpm executable; defaults to `swtpm` on PATH. */
  readonly swtpmPath?: string;
  /** Send CMD_INIT (power on) once listening; default true. TPM2_Startup is still the caller's. */
  readonly powerOn?: boolean;
  readonly startTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const STDERR_TAIL = 4096;

/** Two consecutive free ports, because tpm2-tools' swtpm TCTI expects the control port at port + 1. */
async function freePortPair(): Promise<[number, number]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await listenOn(0);
    if (!first) continue;
    const port = first.port;
    const second = port < 65535 ? await listenOn(port + 1) : null;
    await first.close();
    if (second) {
      await second.close();
      return [port, port + 1];
    }
  }
  throw new Error('could not find two consecutive free TCP ports on 127.0.0.1');
}

function listenOn(port: number): Promise<{ port: number; close(): Promise<void> } | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen(port, HOST, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      resolve({ port: bound, close: () => new Promise<void>((done) => server.close(() => done())) });
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Swtpm {
  readonly stateDir: string;
  readonly host = HOST;
  private readonly keepState: boolean;
  private readonly opts: SwtpmOptions;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stderr = '';
  private ports: [number, number] = [0, 0];

  private constructor(stateDir: string, keepState: boolean, opts: SwtpmOptions) {
    this.stateDir = stateDir;
    this.keepState = keepState;
    this.opts = opts;
  }

  /** Starts swtpm and resolves once it accepts connections (and, by default, is powered on). */
  static async start(opts: SwtpmOptions = {}): Promise<Swtpm> {
    const swtpm = await Swtpm.prepare(opts);
    try {
      await swtpm.run();
    } catch (err) {
      await swtpm.dispose();
      throw err;
    }
    return swtpm;
  }

  /**
   * A swtpm not started yet (its state directory made): one who must kill it on a forced exit
   * registers `kill` before `run`, which spawns it and waits until it listens. Registered only
   * after, a process that exits at once while swtpm starts left it running.
   */
  static async prepare(opts: SwtpmOptions = {}): Promise<Swtpm> {
    const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'unc-swtpm-')));
    return new Swtpm(stateDir, opts.keepState ?? opts.stateDir !== undefined, opts);
  }

  /** Spawns swtpm and resolves once it accepts connections (and, by default, is powered on). */
  async run(): Promise<void> {
    await this.launch();
  }

  /**
   * At a forced exit: SIGTERM to the swtpm process by its PID, at once and without waiting, whether
   * it listens yet or not. Only a child not yet reaped: once it exited, its PID may be another's.
   */
  kill(): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.running) process.kill(pid, 'SIGTERM');
  }

  /** The TPM command port. */
  get port(): number {
    return this.ports[0];
  }

  /** The swtpm control port (CMD_INIT and friends). */
  get ctrlPort(): number {
    return this.ports[1];
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The TCTI string for tpm2-tools (`TPM2TOOLS_TCTI` or `-T`). */
  get tcti(): string {
    return `swtpm:host=${this.host},port=${this.port}`;
  }

  transport(opts: { timeoutMs?: number } = {}): SwtpmSocketTransport {
    return new SwtpmSocketTransport({ host: this.host, port: this.port, ...opts });
  }

  control(): SwtpmControl {
    return new SwtpmControl({ host: this.host, port: this.ctrlPort });
  }

  /** Stops the process (by its PID: SIGTERM, then SIGKILL if it lingers) and starts it again on the same state. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    if (this.running) {
      process.kill(child.pid, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const lingered = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), 5000);
      });
      const stillRunning = await Promise.race([this.exited.then(() => false), lingered]);
      clearTimeout(timer);
      if (stillRunning && this.running) {
        process.kill(child.pid, 'SIGKILL');
        await this.exited;
      }
    }
    this.child = null;
  }

  /** Stops swtpm and removes the state directory unless it is to be kept. */
  async dispose(): Promise<void> {
    await this.stop();
    if (!this.keepState) await rm(this.stateDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const timeoutMs = this.opts.startTimeoutMs ?? 10_000;
    let lastError: Error | null = null;
    // A port found free can be taken before swtpm binds it; a fresh pair on the next try fixes that.
    for (let attempt = 0; attempt < 3; attempt++) {
      this.ports = await freePortPair();
      try {
        await this.spawnAndWait(timeoutMs);
        if (this.opts.powerOn !== false) await this.control().init();
        return;
      } catch (err) {
        lastError = err as Error;
        await this.stop();
      }
    }
    throw lastError ?? new Error('swtpm did not start');
  }

  private async spawnAndWait(timeoutMs: number): Promise<void> {
    const [port, ctrlPort] = this.ports;
    this.stderr = '';
    const child = spawn(
      this.opts.swtpmPath ?? 'swtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${this.stateDir}`,
        '--server',
        `type=tcp,port=${port},bindaddr=${HOST}`,
        '--ctrl',
        `type=tcp,port=${ctrlPort},bindaddr=${HOST}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    const failure: { error: Error | null } = { error: null };
    child.once('error', (err) => {
      failure.error = err;
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-STDERR_TAIL);
    });

    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (failure.error) throw new Error(`cannot run swtpm: ${failure.error.message}`);
      if (!this.running)
        throw new Error(`swtpm exited during start-up: ${this.stderr.trim() || 'no output'}`);
      if ((await canConnect(ctrlPort)) && (await canConnect(port))) return;
      await sleep(25);
    }
    throw new Error(`swtpm did not accept connections within ${timeoutMs} ms`);
  }
}
