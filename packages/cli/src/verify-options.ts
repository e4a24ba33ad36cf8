/**
 * How many signature-check worker threads `unc start` and `unc dev` give their node
 * (docs/operators.md, "Signature-check threads"): `--verify-threads`, else UNC_VERIFY_THREADS, else
 * the home's config.json `{"verify": {"threads": N}}`, else the node's default (a thread per core
 * where they run below the main thread, Linux, else the cores but one; at most
 * MAX_DEFAULT_VERIFY_THREADS). Each one given is checked, used or not: a bad value is an error.
 */
import { UncError } from '@unc/core';
import {
  MAX_DEFAULT_VERIFY_THREADS,
  MAX_VERIFY_THREADS,
  parseVerifyConfig,
  verifyThreadsSetting,
} from '@unc/node';
import type { Command } from 'commander';

export interface VerifyFlags {
  verifyThreads?: string;
}

export function withVerifyOptions(cmd: Command): Command {
  return cmd.option(
    '--verify-threads <n>',
    `signature-check worker threads, 1…${MAX_VERIFY_THREADS} (env UNC_VERIFY_THREADS; config.json verify.threads; default: a thread per core, at most ${MAX_DEFAULT_VERIFY_THREADS})`,
  );
}

/** The thread count the flag, the environment or config.json give, or undefined: the node's default. */
export function verifyThreadsOf(
  flags: VerifyFlags,
  env: NodeJS.ProcessEnv,
  config: Record<string, unknown>,
  configPath: string,
): number | undefined {
  let configured: number | undefined;
  try {
    configured = parseVerifyConfig(config.verify).threads;
  } catch (err) {
    throw new UncError('BAD_CONFIG', `${configPath}: ${(err as Error).message}`);
  }
  const fromEnv = env.UNC_VERIFY_THREADS;
  let environment: number | undefined;
  if (fromEnv !== undefined && fromEnv !== '') {
    try {
      environment = verifyThreadsSetting(fromEnv, 'UNC_VERIFY_THREADS');
    } catch (err) {
      throw new UncError('BAD_ARGUMENT', (err as Error).message);
    }
  }
  let flag: number | undefined;
  if (flags.verifyThreads !== undefined) {
    try {
      flag = verifyThreadsSetting(flags.verifyThreads, '--verify-threads');
    } catch (err) {
      throw new UncError('BAD_ARGUMENT', (err as Error).message);
    }
  }
  return flag ?? environment ?? configured;
}
