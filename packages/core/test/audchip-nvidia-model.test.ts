/**
 * Audit audchip, finding C1 (CONSENSUS CHANGE): an NVIDIA GPU's model on chain. The leaf names only
 * the die ("GH100"); the board, which decides the compute (an SXM5 board, a PCIe board, a cut-down
 * export SKU of the same die), is named by the signed report's opaque PROJECT, PROJECT_SKU and
 * CHIP_SKU fields, which NVIDIA's own verifier reads. Before: the model id was the die, in capitals,
 * which no registry model id can be (lowercase only), so no GPU could register at all; and a
 * registry that took it would have paid every board of one die the same rated power.
 */
import assert from 'node:assert/strict';
import { type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import { concatBytes, fromHex, utf8 } from '../src/bytes.js';
import {
  type Genesis,
  getChip,
  getRecentHash,
  NVIDIA_OPAQUE,
  nvidiaModelId,
  parseSpdmMeasurements,
  type RegisterChipAction,
  registrationMessage,
} from '../src/index.js';
import { der, ext, type Issued, issue, issueCa, name, nvidiaSample } from './attestation/helpers.js';
import { CHAIN, genesis, type Key, miner, other, POCI, TestChain } from './harness.js';

const nv = nvidiaSample();
const FWID = fromHex(
  'f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d',
);
const VENDOR = 'nvidia';
/** The sample H100's board (PROJECT 1010, PROJECT_SKU 0200, CHIP_SKU 882). */
const SAMPLE_BOARD = 'gh100-1010-0200-882';
/** Another board of the same die, made up for the test: less compute, the same "GH100" leaf. */
const SMALL_BOARD = 'gh100-1010-0201-882';

// NVIDIA's chain shape with keys we hold: root → identity CA → provisioner ICA → per-GPU BROM → leaf.
const root = issueCa('Gen Device Identity CA');
const ica1 = issueCa('Gen GH100 Identity', root);
const ica2 = issueCa('Gen Provisioner ICA', ica1);

interface Gpu {
  brom: Issued;
  leaf: Issued;
}

function gpu(serial: bigint): Gpu {
  const brom = issueCa('Gen GSP BROM', ica2, { serial });
  const leaf = issue({
    subject: name('Gen GSP FMC LF'),
    issuer: brom,
    keyAlg: 'P-384',
    extensions: ({ ski }) => [
      ext.ku(0),
      ext.ski(ski),
      ext.aki(brom.ski),
      ext.raw(
        '2.5.29.17',
        false,
        der.seq(
          der.ctx(
            0,
            true,
            concatBytes(der.oid('1.3.6.1.4.1.412.274.1'), der.ctx(0, true, der.utf8('NVIDIA:GH100:00'))),
          ),
        ),
      ),
      ext.raw(
        '2.23.133.5.4.1',
        false,
        der.seq(der.int(1), der.seq(der.oid('2.16.840.1.101.3.4.2.2'), der.octet(FWID))),
      ),
    ],
  });
  return { brom, leaf };
}

/** The sample exchange for `nonce`, its opaque data edited, signed by `key`. */
function exchange(
  key: KeyObject,
  nonce: Uint8Array,
  edit: (opaque: Map<number, Uint8Array>) => void = () => {},
): { request: Uint8Array; response: Uint8Array } {
  const request = Uint8Array.from(nv.request);
  request.set(nonce, 4);
  const opaque = new Map(parseSpdmMeasurements(nv.request, nv.response).opaque);
  edit(opaque);
  const body = concatBytes(
    ...[...opaque].map(([type, value]) => {
      const h = Buffer.alloc(4);
      h.writeUInt16LE(type, 0);
      h.writeUInt16LE(value.length, 2);
      return concatBytes(h, value);
    }),
  );
  const recordEnd = 8 + (nv.response[5]! | (nv.response[6]! << 8) | (nv.response[7]! << 16));
  const len = Buffer.alloc(2);
  len.writeUInt16LE(body.length, 0);
  const unsigned = concatBytes(nv.response.subarray(0, recordEnd + 32), len, body);
  const sig = sign('sha384', concatBytes(request, unsigned), { key, dsaEncoding: 'ieee-p1363' });
  return { request, response: concatBytes(unsigned, new Uint8Array(sig)) };
}

function withNvidia(g: Genesis): Genesis {
  return {
    ...g,
    vendors: [...g.vendors, { id: VENDOR, name: 'NVIDIA', profile: 'nvidia-spdm', roots: [root.der] }],
    models: [
      ...g.models,
      { vendorId: VENDOR, modelId: SAMPLE_BOARD, name: 'GH100 board 1010/0200', power: 989_000n },
      { vendorId: VENDOR, modelId: SMALL_BOARD, name: 'GH100 board 1010/0201', power: 148_000n },
    ],
  };
}

function register(
  chain: TestChain,
  owner: Key,
  g: Gpu,
  edit?: (opaque: Map<number, Uint8Array>) => void,
): RegisterChipAction {
  const anchor = chain.height;
  const message = registrationMessage(
    CHAIN,
    owner.address,
    getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor),
  );
  const { request, response } = exchange(g.leaf.key, message, edit);
  return {
    type: 'registerChip',
    anchorHeight: anchor,
    evidence: {
      type: 'nvidia-spdm',
      vendorId: VENDOR,
      request,
      response,
      chain: [g.leaf.der, g.brom.der, ica2.der, ica1.der],
    },
  };
}

const registered = (events: { type: string }[]) =>
  events.find((e) => e.type === 'chipRegistered') as
    | { chipId: Uint8Array; modelId: string; power: bigint }
    | undefined;

describe('audchip C1: an NVIDIA GPU registers as its board, not its die', () => {
  test('a GPU registers on chain, its model read from the signed report (it could not register at all)', () => {
    const chain = new TestChain(withNvidia(genesis(POCI)));
    chain.blocksUntil(3n);
    const events = chain.block([chain.tx(miner, [register(chain, miner, gpu(0x4143_0001n))])]);
    const e = registered(events);
    assert.ok(e, `registered: ${JSON.stringify(events.map((x) => x.type))}`);
    assert.equal(e.modelId, SAMPLE_BOARD);
    assert.equal(e.power, 989_000n);
    assert.equal(getChip(chain.state, e.chipId)!.power, 989_000n);
  });

  test('attack: a smaller board of the same die is paid as its own model, not as the largest', () => {
    const chain = new TestChain(withNvidia(genesis(POCI)));
    chain.blocksUntil(3n);
    const small = (o: Map<number, Uint8Array>) => o.set(NVIDIA_OPAQUE.PROJECT_SKU, utf8('0201\0'));
    const e = registered(chain.block([chain.tx(other, [register(chain, other, gpu(0x4143_0002n), small)])]));
    assert.ok(e, 'registered');
    assert.equal(e.modelId, SMALL_BOARD);
    assert.equal(e.power, 148_000n);
  });

  test('a report that names no board, or a board the registry does not list, does not register', () => {
    const chain = new TestChain(withNvidia(genesis(POCI)));
    chain.blocksUntil(3n);
    const cases: [string, (o: Map<number, Uint8Array>) => void, RegExp][] = [
      ['no PROJECT_SKU', (o) => o.delete(NVIDIA_OPAQUE.PROJECT_SKU), /names no board/],
      ['no CHIP_SKU', (o) => o.delete(NVIDIA_OPAQUE.CHIP_SKU), /names no board/],
      [
        'a PROJECT that is not letters and digits',
        (o) => o.set(NVIDIA_OPAQUE.PROJECT, utf8('10-1\0')),
        /names no board/,
      ],
      ['bytes after the NUL', (o) => o.set(NVIDIA_OPAQUE.PROJECT, utf8('1010\0x')), /names no board/],
      [
        'a PROJECT_SKU of 9 characters',
        (o) => o.set(NVIDIA_OPAQUE.PROJECT_SKU, utf8('020000000')),
        /names no board/,
      ],
      ['an unlisted board', (o) => o.set(NVIDIA_OPAQUE.PROJECT_SKU, utf8('0300\0')), /gh100-1010-0300-882/],
    ];
    for (const [label, edit, re] of cases) {
      const err = chain.attempt(chain.tx(miner, [register(chain, miner, gpu(0x4143_0003n), edit)]));
      assert.ok(err, `${label}: refused`);
      assert.equal(err.code, 'ATTEST_UNKNOWN_MODEL', `${label}: ${err.message}`);
      assert.match(err.message, re, label);
    }
  });
});

test('review revchip: one board, one id, whatever the firmware pads its fields to, and in any case', () => {
  // The committed sample (driver 550.90.07) carries CHIP_SKU in 9 bytes; nvtrust's earlier sample
  // (driver 545.00) in 4, "882\0": both are the board 1010/0200/882. NVIDIA's own verifier compares
  // the fields without regard to case, as the lowercase id does.
  const fields = (chipSku: string, project = '1010\0') =>
    new Map([
      [NVIDIA_OPAQUE.PROJECT, utf8(project)],
      [NVIDIA_OPAQUE.PROJECT_SKU, utf8('0200\0')],
      [NVIDIA_OPAQUE.CHIP_SKU, utf8(chipSku)],
    ]) as ReadonlyMap<number, Uint8Array>;
  assert.equal(nvidiaModelId('GH100', fields('882\0\0\0\0\0\0')), SAMPLE_BOARD);
  assert.equal(nvidiaModelId('GH100', fields('882\0')), SAMPLE_BOARD);
  assert.equal(nvidiaModelId('GH100', fields('882')), SAMPLE_BOARD);
  assert.equal(nvidiaModelId('GH100', fields('882', 'G520\0')), 'gh100-g520-0200-882');
  assert.equal(nvidiaModelId('GH100', fields('882', 'g520')), 'gh100-g520-0200-882');
  // No field may hold the separator, so an id splits one way only.
  assert.equal(nvidiaModelId('GH100', fields('8-2')), null);
  assert.equal(nvidiaModelId('GH100', fields('')), null);
});
