import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Action,
  devSoftChipId,
  getOffer,
  listCount,
  offersByProvider,
  StateSpace,
  type TxEvent,
} from '../src/index.js';
import { key, miner, registerAction, TestChain } from './harness.js';

const chip = key('aud-bloat-chip');
const chipId = devSoftChipId(chip.publicKey);

function offer(): Action {
  return {
    type: 'createOffer',
    chipIds: [chipId],
    pricePerHour: 10n ** 18n,
    minHours: 1,
    maxHours: 10,
    noticeMs: 0n,
    // The largest endpoint a record holds: what an attacker pays per byte kept is the point.
    endpoint: `https://${'a'.repeat(230)}.example/`,
    attributes: { memoryMiB: 1, region: 'eu-west', runtimes: ['onnx'] },
    tlsFingerprints: [new Uint8Array(32).fill(7)],
  } as Action;
}

function offerKeys(chain: TestChain): number {
  let n = 0;
  for (const w of chain.state.map.values()) if (w.key[0] === StateSpace.offer) n++;
  return n;
}

describe('aud-bloat: offers nobody leased', () => {
  // Create and close, again and again, on one chip: each round costs two actions' minimum fee and
  // left an offer record (up to ~1.7 kB) and a link in the provider's list in the state for good,
  // which every node holds in memory and reloads and rehashes at every start.
  test('closing an offer that never opened a lease leaves nothing of it in the state', () => {
    const chain = new TestChain();
    chain.blocksUntil(2n);
    chain.block([chain.tx(miner, [registerAction(chain, chip, miner.address)])]);
    const ids: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) {
      const created = chain.block([chain.tx(miner, [offer()])]);
      const id = (
        created.find((e) => e.type === 'offerCreated') as Extract<TxEvent, { type: 'offerCreated' }>
      ).offerId;
      ids.push(id);
      const closed = chain.block([chain.tx(miner, [{ type: 'closeOffer', offerId: id }])]);
      assert.ok(closed.some((e) => e.type === 'offerClosed'));
    }
    for (const id of ids) assert.equal(getOffer(chain.state, id), null);
    assert.equal(offerKeys(chain), 0);
    assert.equal(listCount(chain.state, offersByProvider(miner.address)), 0n);
  });
});
