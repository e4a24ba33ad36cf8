/** Processes the gateway's end-to-end test and `bench:gateway` start: providers and the gateway. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UNC } from './helpers.js';

const PROVIDER = fileURLToPath(new URL('./gateway-provider.js', import.meta.url));

export interface ProviderProcess {
  name: string;
  proc: ChildProcess;
  address: string;
  offerId: string;
  chipId: string;
}

/**
 * A miner agent with its own owner (dev account `owner`), dev chip `chip`, offer at `price` UNC/h;
 * `tamper`: a dishonest one that rewrites its receipts (gateway-provider.ts).
 */
export function startProvider(
  name: string,
  nodeUrl: string,
  dir: string,
  spec: { owner: number; chip: number; price: string; tamper?: boolean },
): Promise<ProviderProcess> {
  const args = [PROVIDER, nodeUrl, String(spec.owner), String(spec.chip), spec.price, join(dir, name)];
  if (spec.tamper) args.push('--tamper');
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider ${name} not ready:\n${out}`)), 150_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve({
          name,
          proc,
          ...(JSON.parse(line) as { address: string; offerId: string; chipId: string }),
        });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`provider ${name} exited with ${code}:\n${out}`));
    });
  });
}

/** Runs `unc gateway start` with `args`; resolves with its API URL once it listens. */
export async function startGateway(args: string[]): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(
    process.execPath,
    [UNC, 'gateway', 'start', '--port', '0', '--output', 'json', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, UNC_LOG_LEVEL: 'warn' },
    },
  );
  let out = '';
  proc.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start:\n${out}`)), 60_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /"url": "(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`unc gateway start exited with ${code}:\n${out}`));
    });
  });
  return { proc, url };
}

/** Sends a signal and waits for the process to exit. */
export async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  await exited;
}
