/**
 * A real `unc dev` process for the sdk's tests (the sdk cannot import the node package: the
 * dependency points the other way, so the test runs the built CLI). Started in a temporary home,
 * stopped by its PID and its home removed afterwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  addressFromPublicKey,
  deriveEd25519,
  ed25519PublicKey,
  encodeAddress,
  mnemonicFromEntropy,
  mnemonicToSeed,
  sha256,
  uncDerivationPath,
  utf8,
} from '@unc/core';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const UNC = join(ROOT, 'packages/cli/bin/unc.js');

export interface DevChain {
  url: string;
  stop(): Promise<void>;
}

export async function startDevChain(blockTimeMs = 200): Promise<DevChain> {
  const home = mkdtempSync(join(tmpdir(), 'unc-sdk-test-'));
  const proc: ChildProcess = spawn(
    process.execPath,
    [
      UNC,
      'dev',
      '--home',
      home,
      '--rpc-port',
      '0',
      '--block-time',
      String(blockTimeMs),
      '--chips',
      '0',
      '--no-offer',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      process.kill(proc.pid, 'SIGTERM');
      const timer = setTimeout(
        () => proc.pid !== undefined && proc.exitCode === null && process.kill(proc.pid, 'SIGKILL'),
        5000,
      );
      await exited;
      clearTimeout(timer);
    }
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      // Generous: on a loaded CI machine the start alone can take well over 30 s (the CLI's own
      // tests give it 90 s).
      const timer = setTimeout(() => reject(new Error(`unc dev did not start in 120 s:\n${out}`)), 120_000);
      proc.stdout!.on('data', () => {
        const m = /RPC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`unc dev exited with ${code}:\n${out}`));
      });
    });
    await firstBlock(url, () => out);
    return { url, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The RPC answers before the chain commits its first block; on a loaded machine a test that asks
 * for block 1 at once found none. Wait, by block height, not by a fixed sleep.
 */
async function firstBlock(url: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'unc_status', params: [] }),
    });
    const body = (await res.json()) as { result?: { height?: number } };
    if ((body.result?.height ?? 0) >= 1) return;
    if (Date.now() > deadline) throw new Error(`unc dev committed no block in 120 s:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The dev chain's funded account `index` (the public dev mnemonic, as packages/node/src/dev.ts). */
export function devAccount(index: number): { seed: Uint8Array; address: string } {
  const mnemonic = mnemonicFromEntropy(sha256(utf8('UtilityNet dev accounts')).slice(0, 16));
  const seed = deriveEd25519(mnemonicToSeed(mnemonic), uncDerivationPath(index)).key;
  return { seed, address: encodeAddress(addressFromPublicKey(ed25519PublicKey(seed))) };
}
