/**
 * The OS isolation of a provider's job processes (docs/jobs.md, "Job isolation"), for
 * `unc miner start` and `unc dev`: `--job-isolation`, else UNC_JOB_ISOLATION, else the home's
 * config.json `{"provider": {"jobIsolation": "…"}}`, else `auto`. Each one given is checked, used or
 * not: a bad value is an error.
 */
import { UncError } from '@unc/core';
import { isJobIsolationMode, JOB_ISOLATION_MODES, type JobIsolationMode } from '@unc/miner';
import type { Command } from 'commander';

export interface JobIsolationFlags {
  jobIsolation?: string;
}

export const JOB_ISOLATION_HELP =
  "OS sandbox of the job processes that run renters' models: auto (bubblewrap where it works, else none with a warning), bwrap (refuse to start without it) or none (env UNC_JOB_ISOLATION; config.json provider.jobIsolation; default auto)";

export function withJobIsolationOption(cmd: Command): Command {
  return cmd.option('--job-isolation <mode>', JOB_ISOLATION_HELP);
}

function mode(value: unknown, where: string, code: string): JobIsolationMode {
  if (!isJobIsolationMode(value))
    throw new UncError(
      code,
      `${where} must be ${JOB_ISOLATION_MODES.join(', ')}, not ${JSON.stringify(value)}`,
    );
  return value;
}

/** The mode the flag, the environment or config.json give; `auto` where none does. */
export function jobIsolationOf(
  flags: JobIsolationFlags,
  env: NodeJS.ProcessEnv,
  config: Record<string, unknown>,
  configPath: string,
): JobIsolationMode {
  const provider = config.provider;
  let configured: JobIsolationMode | undefined;
  if (provider !== undefined) {
    if (typeof provider !== 'object' || provider === null || Array.isArray(provider))
      throw new UncError('BAD_CONFIG', `${configPath}: provider must be an object`);
    const v = (provider as Record<string, unknown>).jobIsolation;
    if (v !== undefined) configured = mode(v, `${configPath}: provider.jobIsolation`, 'BAD_CONFIG');
  }
  const fromEnv = env.UNC_JOB_ISOLATION;
  const environment =
    fromEnv !== undefined && fromEnv !== '' ? mode(fromEnv, 'UNC_JOB_ISOLATION', 'BAD_ARGUMENT') : undefined;
  const flag =
    flags.jobIsolation !== undefined
      ? mode(flags.jobIsolation, '--job-isolation', 'BAD_ARGUMENT')
      : undefined;
  return flag ?? environment ?? configured ?? 'auto';
}
