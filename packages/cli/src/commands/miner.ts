import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UncError } from '@unc/core';
import type { ChipStatus } from '@unc/miner';
import { Command } from 'commander';
import { ctxOf, withCommon } from '../context.js';

export function minerCommand(): Command {
  const miner = new Command('miner').description('the miner agent that keeps chips registered and answering');

  withCommon(
    miner
      .command('status')
      .description("each chip's state, next slot, recent answers and earnings, from the running agent")
      .option('--agent <url>', 'the agent status URL (default: the one recorded in the home)'),
  ).action(async (opts: { agent?: string }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    let url = opts.agent;
    const config = join(ctx.home, 'config.json');
    if (!url && existsSync(config)) url = (JSON.parse(readFileSync(config, 'utf8')) as { miner?: string }).miner ?? undefined;
    if (!url) throw new UncError('NO_AGENT', `no miner agent recorded in ${config}; pass --agent <url>`);
    let status: { owner: string; node: string; height: number; chips: ChipStatus[] };
    try {
      status = (await (await fetch(`${url.replace(/\/$/, '')}/status`, { signal: AbortSignal.timeout(10_000) })).json()) as typeof status;
    } catch (err) {
      throw new UncError('AGENT_UNREACHABLE', `cannot reach the miner agent at ${url}: ${(err as Error).message}`);
    }
    ctx.print(status, () =>
      [
        `miner agent for ${status.owner} on ${status.node} (height ${status.height})`,
        ...status.chips.map((c) =>
          [
            `  ${c.label} ${c.chipId.slice(0, 16)}… ${c.profile}: ${c.registered ? (c.online ? 'online' : 'OFFLINE') : 'not registered'}, answered ${c.answered}, missed ${c.missed}, earned ${c.rewardsEarned}`,
            c.nextSlot ? `      next slot: height ${c.nextSlot.height} (epoch ${c.nextSlot.epoch}, slot ${c.nextSlot.slot})` : '',
            ...c.recent.slice(-3).map((r) => `      slot ${r.epoch}:${r.slot} at ${r.height}: ${r.result}`),
            c.lastError ? `      last error: ${c.lastError}` : '',
          ]
            .filter(Boolean)
            .join('\n'),
        ),
      ].join('\n'),
    );
  });

  return miner;
}
