/**
 * The emission card's "Mining reserve" bar (`reserveSplit`, loaded from src through Vite's SSR
 * loader, no browser): since an epoch is allotted only its own span of the schedule
 * (docs/security-audit-time.md T2), E(t) − minted is no longer what chips are owed. The time before
 * block 1 and every epoch nobody earned in are never minted, so the bar may call "not paid yet" only
 * what final epochs were allotted and not paid (allocatedToEpochs − minted).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { ViteDevServer } from 'vite';

const EXPLORER_DIR = fileURLToPath(new URL('../../', import.meta.url));

interface Split {
  reserve: bigint;
  minted: bigint;
  owed: bigint;
  unallotted: bigint;
  unemitted: bigint;
}
interface Network {
  reserveSplit: (supply: unknown) => Split;
  epochBudgetNote: (e: { final: boolean; totalWeight: string }) => string | null;
}

const UNC = 10n ** 18n;
const RESERVE = 970_000_000n * UNC;

function supply(emitted: bigint, allocated: bigint, minted: bigint): unknown {
  return {
    maxSupply: (1_000_000_000n * UNC).toString(),
    genesisAllocation: (30_000_000n * UNC).toString(),
    miningReserve: RESERVE.toString(),
    minted: minted.toString(),
    reserveRemaining: (RESERVE - minted).toString(),
    burned: '0',
    slashed: '0',
    circulating: '0',
    emittedAllowance: emitted.toString(),
    allocatedToEpochs: allocated.toString(),
    halvingPeriodMs: 63_115_200_000,
    currentEpoch: null,
  };
}

describe('emission card: the mining reserve bar', () => {
  let server: ViteDevServer;
  let network: Network;

  before(async () => {
    const { createServer } = await import('vite');
    server = await createServer({
      root: EXPLORER_DIR,
      configFile: `${EXPLORER_DIR}vite.config.ts`,
      logLevel: 'warn',
      appType: 'custom',
      server: { middlewareMode: true, hmr: false },
      optimizeDeps: { noDiscovery: true, include: [] },
    });
    network = (await server.ssrLoadModule('/src/components/network.tsx')) as Network;
  });

  after(async () => {
    await server?.close();
  });

  test('a chain launched a week after its genesisTime: the week is not shown as owed to chips', () => {
    // E(t) includes the week before block 1 (≈ 4.6 M UNC) that no epoch is ever allotted; final
    // epochs were allotted 27 k UNC, 20 k of it paid.
    const week = 4_600_000n * UNC;
    const s = network.reserveSplit(supply(week + 30_000n * UNC, 27_000n * UNC, 20_000n * UNC));
    assert.equal(s.owed, 7_000n * UNC, 'owed: allotted to final epochs, not paid yet');
    assert.equal(s.unallotted, week + 3_000n * UNC, 'open epochs and time nobody earned in');
    assert.equal(s.unemitted, RESERVE - week - 30_000n * UNC);
  });

  test('property: the parts tile the reserve, owed = allotted − minted', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: RESERVE }),
        fc.bigInt({ min: 0n, max: RESERVE }),
        fc.bigInt({ min: 0n, max: RESERVE }),
        (a, b, c) => {
          // minted ≤ allocated ≤ E(t) ≤ reserve on every chain.
          const [minted, allocated, emitted] = [a, b, c].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
          const s = network.reserveSplit(supply(emitted!, allocated!, minted!));
          assert.equal(s.minted + s.owed + s.unallotted + s.unemitted, RESERVE);
          assert.equal(s.owed, allocated! - minted!);
          assert.equal(s.unallotted, emitted! - allocated!);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('an open epoch nobody has earned in yet says its budget so far is not minted unless a chip earns', () => {
    assert.match(network.epochBudgetNote({ final: false, totalWeight: '0' }) ?? '', /not minted unless/);
    assert.equal(network.epochBudgetNote({ final: true, totalWeight: '0' }), 'nobody earned: not minted');
    assert.equal(network.epochBudgetNote({ final: false, totalWeight: '5' }), null);
    assert.equal(network.epochBudgetNote({ final: true, totalWeight: '5' }), null);
  });
});
