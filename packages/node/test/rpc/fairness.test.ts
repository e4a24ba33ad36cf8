/**
 * Per-IP limits shared by prefix (rpc/clients.ts) and the WebSocket line (rpc/line.ts), tested in
 * their pure form with any address: an IPv4 address counts under its /24 and /16, an IPv6 /64 under
 * its /48 and /32, and each prefix gets its share's worth of every limit. The server's wiring, with
 * real sockets from 127.x.y.z, is tested in server.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ClientTally,
  clientKey,
  DEFAULT_PREFIX_SHARES,
  forwardedClient,
  levelsOf,
  MAX_FORWARDED_CHARS,
  MAX_FORWARDED_HOPS,
  MAX_TRACKED_CLIENTS,
  MAX_WANTS,
  MIN_NETWORKS,
  normalAddress,
  type PrefixShares,
  prefixesOf,
  RateLimiter,
  type Tallied,
  unlimitedEntry,
  WANT_MS,
} from '../../src/rpc/clients.js';
import { roomAhead, WsLine, type WsPlace } from '../../src/rpc/line.js';

/** Both prefix levels on, as a node that sets networkShare has them (the /16, /32 level is off by default). */
const BOTH_LEVELS: PrefixShares = { subnet: 4, network: 16 };

/**
 * Addresses from a small world, so that sequences hit the same prefixes often: IPv4 in two /16s of
 * two /24s each (one also reached as IPv4-mapped IPv6), IPv6 in two /32s of two /48s each.
 */
const address = fc.oneof(
  fc
    .tuple(fc.constantFrom(10, 11), fc.constantFrom(1, 2), fc.nat({ max: 5 }), fc.boolean())
    .map(([b, c, d, mapped]) => `${mapped ? '::ffff:' : ''}${b}.20.${c}.${d}`),
  fc
    .tuple(fc.constantFrom('2001:db8', '2001:db9'), fc.constantFrom(1, 2), fc.nat({ max: 5 }))
    .map(([net, sub, host]) => `${net}:${sub}:${host}::7`),
);
const shares = fc.record({ subnet: fc.nat({ max: 4 }), network: fc.nat({ max: 8 }) });

/** The keys (client and prefixes) `client` counts under, with the cap multiplier of each. */
function capsOf(client: string, s: PrefixShares): Map<string, number> {
  return new Map(levelsOf(client, s).map((l) => [l.key, l.share]));
}

describe('per-IP limits shared by prefix', () => {
  it('counts IPv4 under its /24 and /16, IPv6 under its /48 and /32, IPv4-mapped as IPv4', () => {
    assert.deepEqual(prefixesOf(clientKey('198.51.100.7')), ['198.51.100.0/24', '198.51.0.0/16']);
    assert.deepEqual(prefixesOf(clientKey('::ffff:198.51.100.7')), ['198.51.100.0/24', '198.51.0.0/16']);
    assert.deepEqual(prefixesOf(clientKey('2001:db8:aa:bb:1::1')), ['2001:db8:aa::/48', '2001:db8::/32']);
    assert.deepEqual(prefixesOf(clientKey('2001:0db8:00aa::1')), ['2001:db8:aa::/48', '2001:db8::/32']);
    assert.equal(prefixesOf('unknown'), undefined);
    // A share of 0 turns its level off; the client itself is always counted, at share 1.
    assert.deepEqual(
      levelsOf('198.51.100.7', { subnet: 0, network: 16 }).map((l) => [l.key, l.share]),
      [
        ['198.51.100.7', 1],
        ['198.51.0.0/16', 16],
      ],
    );
    assert.deepEqual(levelsOf('unknown', DEFAULT_PREFIX_SHARES), [{ key: 'unknown', share: 1 }]);
    // By default only the /24 (/48) level is counted: a /16 or /32 holds too many unrelated clients.
    assert.deepEqual(
      levelsOf('198.51.100.7', DEFAULT_PREFIX_SHARES).map((l) => l.key),
      levelsOf('198.51.100.7', { subnet: 4, network: 0 }).map((l) => l.key),
    );
    assert.equal(levelsOf('198.51.100.7', DEFAULT_PREFIX_SHARES).length, 2);
  });

  it('matches unlimitedAddresses as sockets give addresses, however they are written', () => {
    for (const [written, socket] of [
      ['10.0.0.5', '10.0.0.5'],
      ['2001:DB8:0:0::1', '2001:db8::1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['::FFFF:127.0.0.1', '::ffff:127.0.0.1'],
      ['::ffff:7f00:1', '::ffff:127.0.0.1'],
      ['fe80::0:1%eth0', 'fe80::1%eth0'],
    ] as const) {
      assert.equal(unlimitedEntry(written), normalAddress(socket), written);
    }
    for (const bad of ['localhost', '10.0.0.0/8', '1.2.3.4%eth0', '::g', ''])
      assert.throws(() => unlimitedEntry(bad), TypeError, bad);
  });

  it('holds a /24 and a /16 of IPv4, a /48 and a /32 of IPv6, to their shares however many addresses', () => {
    // Before, IPv4 addresses had no prefix: a /24 opened 256 times the sockets of one address.
    const limit = 2;
    for (const [label, many, lone] of [
      ['/24', (i: number) => `203.0.113.${i}`, '198.51.100.1'],
      ['/16', (i: number) => `203.0.${i}.1`, '198.51.100.1'],
      ['/48', (i: number) => `2001:db8:1:${i.toString(16)}::1`, '2001:db9::1'],
      ['/32', (i: number) => `2001:db8:${i.toString(16)}::1`, '2001:db9::1'],
    ] as const) {
      const tally = new ClientTally(limit, BOTH_LEVELS);
      let admitted = 0;
      for (let i = 0; i < 256; i++)
        for (let k = 0; k < limit; k++) if (tally.add(clientKey(many(i))).within) admitted++;
      const share = label === '/24' || label === '/48' ? BOTH_LEVELS.subnet : BOTH_LEVELS.network;
      assert.equal(admitted, limit * share, `a ${label} gets ${share} addresses' worth`);
      // A lone address elsewhere is unaffected: its whole cap, no more.
      assert.ok(tally.add(clientKey(lone)).within && tally.add(clientKey(lone)).within, `${label}: lone`);
      assert.ok(!tally.fits(clientKey(lone)));
    }
  });

  it('says which level refused: the address, or the prefix by name', () => {
    const tally = new ClientTally(1, { subnet: 2, network: 3 });
    tally.add('10.1.1.1');
    assert.deepEqual(tally.over('10.1.1.1'), { key: '10.1.1.1', share: 1 });
    tally.add('10.1.1.2');
    assert.deepEqual(tally.over('10.1.1.3'), { key: '10.1.1.0/24', share: 2 });
    tally.add('10.1.2.1');
    assert.deepEqual(tally.over('10.1.3.1'), { key: '10.1.0.0/16', share: 3 });
    assert.equal(tally.over('10.2.1.1'), undefined);
  });

  it('counts tallies within every cap, and a lone address is held to its own cap only (property)', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 3 }).map((n) => n + 1),
        shares,
        fc.array(fc.tuple(fc.boolean(), address), { maxLength: 200 }),
        (limit, s, steps) => {
          const now = 1_000;
          const tally = new ClientTally(limit, s);
          // Every add is kept (a socket is open until closed, refused or not), as onSocket does.
          const open: Tallied[] = [];
          /** Per prefix: the clients that asked since it last held nothing (a want lasts that long here). */
          const askedIn = new Map<string, Set<string>>();
          for (const [add, addr] of steps) {
            const client = clientKey(addr);
            if (!add) {
              const i = open.findIndex((t) => t.client === client);
              if (i !== -1) tally.remove(open.splice(i, 1)[0]!);
              for (const [key, who] of askedIn) if (tally.count(key) === 0) who.clear();
              continue;
            }
            const caps = capsOf(client, s);
            const admittedIn = (key: string) =>
              open.filter((t) => t.within && capsOf(t.client, s).has(key)).length;
            const mine = open.filter((t) => t.client === client).length;
            // No other address in its prefixes, holding or wanting: held to its own cap only.
            const lone =
              open.every((t) => t.client === client || !t.within || !prefixShared(t.client, client, s)) &&
              [...caps.keys()].every((key) => [...(askedIn.get(key) ?? [])].every((c) => c === client));
            const fits = tally.fits(client, now);
            if (lone) assert.equal(fits, mine < limit, 'a lone address is held to its own cap only');
            for (const key of caps.keys()) {
              if (!askedIn.has(key)) askedIn.set(key, new Set());
              askedIn.get(key)!.add(client);
            }
            const t = tally.add(client, now);
            assert.equal(t.within, fits);
            open.push(t);
            // Every level holds at most its cap of admitted tallies, and counts nothing else.
            for (const [key, share] of caps) {
              if (key === client) continue;
              assert.equal(tally.count(key), admittedIn(key));
              assert.ok(tally.count(key) <= limit * share, `${key} over its share`);
            }
            assert.ok(open.filter((o) => o.client === client && o.within).length <= limit);
          }
          for (const t of open.splice(0)) tally.remove(t);
          for (const [, addr] of steps)
            for (const key of capsOf(clientKey(addr), s).keys()) assert.equal(tally.count(key), 0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** Whether two clients share a prefix that is counted (a level with a share). */
function prefixShared(a: string, b: string, s: PrefixShares): boolean {
  const mine = new Set(
    levelsOf(b, s)
      .slice(1)
      .map((l) => l.key),
  );
  return levelsOf(a, s)
    .slice(1)
    .some((l) => mine.has(l.key));
}

describe('a network shares a total with others, and its addresses share it fairly', () => {
  it('holds a network to an eighth of a server-wide total, an address alone never below its own cap', () => {
    // maxWsConnections 256 and 8 WebSockets an address: a /24 (4 addresses' worth) gets 32.
    const ws = new ClientTally(8, DEFAULT_PREFIX_SHARES, 256 / MIN_NETWORKS);
    assert.equal(ws.cap('203.0.113.1', '203.0.113.0/24'), 32);
    // However large a share an operator sets, a network holds at most total / MIN_NETWORKS of it...
    const wide = new ClientTally(8, { subnet: 64, network: 256 }, 256 / MIN_NETWORKS);
    assert.equal(wide.cap('203.0.113.1', '203.0.113.0/24'), 32);
    assert.equal(wide.cap('203.0.113.1', '203.0.0.0/16'), 32);
    // ...unless one address's own cap is more: an address alone is never held below it.
    const big = new ClientTally(64, DEFAULT_PREFIX_SHARES, 256 / MIN_NETWORKS);
    assert.equal(big.cap('203.0.113.1', '203.0.113.0/24'), 64);
    let admitted = 0;
    for (let i = 1; i <= 200; i++) if (ws.add(`203.0.113.${i}`, 0).within) admitted++;
    assert.equal(admitted, 32);
    for (let n = 0; n < MIN_NETWORKS - 1; n++)
      for (let i = 1; i <= 8; i++) assert.ok(ws.add(`198.51.${n}.${i}`, 0).within);
  });

  it('keeps what a hog of its network frees for the neighbour that wants in', () => {
    // One address's worth per /24 (subnetShare 1): before, the address that filled it took back
    // every slot it freed, and a neighbour asking all along never got one.
    const tally = new ClientTally(4, { subnet: 1, network: 0 });
    let now = 0;
    const hog = Array.from({ length: 4 }, () => tally.add('10.0.0.1', now));
    assert.ok(
      hog.every((t) => t.within),
      'alone, an address may hold its whole network',
    );
    const refused = tally.add('10.0.0.2', now);
    assert.ok(!refused.within);
    tally.remove(refused);
    // The hog's sockets come and go: what it frees, it cannot take back while its neighbour waits.
    tally.remove(hog.pop()!);
    now += 500;
    assert.ok(!tally.add('10.0.0.1', now).within, 'a hog over its fair part (2 of 4) is refused');
    assert.ok(tally.add('10.0.0.2', now).within, 'the neighbour that waited gets the slot');
    assert.deepEqual(tally.wanting('10.0.0.0/24', now), [], 'in, it wants no more');
    // Both asking, the hog gets back no more than its fair part as it frees more.
    tally.remove(hog.pop()!);
    tally.remove(hog.pop()!);
    assert.ok(tally.add('10.0.0.3', now).within, 'under the cap, no one waiting: a third address is let in');
    assert.equal(tally.count('10.0.0.0/24'), 3);
    // Wants end: once no one else asked for WANT_MS, an address may fill its network again.
    const later = now + WANT_MS + 1;
    assert.deepEqual(tally.wanting('10.0.0.0/24', later), []);
    assert.ok(tally.add('10.0.0.1', later).within);
  });

  it('admits no address past half its network while another wants in (property)', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 4 }).map((n) => n + 1),
        fc.record({ subnet: fc.nat({ max: 4 }).map((n) => n + 1), network: fc.constant(0) }),
        fc.option(fc.nat({ max: 12 }), { nil: undefined }),
        // Mostly adds, mostly no time passing: networks fill and neighbours wait.
        fc.array(
          fc.tuple(
            fc.nat({ max: 9 }).map((n) => n < 7),
            fc.nat({ max: 3 }),
            fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 2 * WANT_MS })),
          ),
          { maxLength: 150 },
        ),
        (limit, s, most, steps) => {
          const tally = new ClientTally(limit, s, most);
          const open: Tallied[] = [];
          let now = 0;
          for (const [add, host, wait] of steps) {
            now += wait;
            const client = `10.0.0.${host}`;
            const prefix = '10.0.0.0/24';
            if (!add) {
              const i = open.findIndex((t) => t.client === client);
              if (i !== -1) tally.remove(open.splice(i, 1)[0]!);
              continue;
            }
            const cap = tally.cap(client, prefix)!;
            const others = tally.wanting(prefix, now).filter((c) => c !== client);
            const t = tally.add(client, now);
            open.push(t);
            const mine = open.filter((o) => o.client === client && o.within).length;
            if (t.within && others.length > 0) {
              assert.ok(mine <= Math.max(1, Math.floor(cap / 2)), `${client} past half of ${cap}`);
            }
            assert.ok(tally.count(prefix) <= cap);
            assert.ok(cap <= Math.max(limit, most ?? Number.POSITIVE_INFINITY));
            // Only addresses refused (and none that got in since) want in, at most cap of them.
            const wanting = tally.wanting(prefix, now);
            assert.ok(wanting.length <= cap);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('the wants a tally holds: bounded however many networks ask', () => {
  /** Fills /24 number `i` (one address's worth: subnetShare 1) and has a neighbour refused there. */
  function refuseIn(tally: ClientTally, i: number, now: number): void {
    const hold = tally.add(`10.${i >> 8}.${i & 255}.1`, now);
    assert.ok(hold.within);
    const refused = tally.add(`10.${i >> 8}.${i & 255}.2`, now);
    assert.ok(!refused.within);
    tally.remove(refused);
  }

  it('forgets expired wants of networks no one asks about again: each refusal sweeps a slice, the timer the rest', () => {
    // Before, a want went only when its own prefix was asked about again: an IPv6 client with
    // 1,024 /48s to come from left 131,072 of them held for good.
    const tally = new ClientTally(1, { subnet: 1, network: 0 });
    for (let i = 0; i < 600; i++) refuseIn(tally, i, 0);
    assert.equal(tally.wantsHeld, 600);
    const later = WANT_MS + 1;
    // A refusal elsewhere, once they expired, sweeps a slice of them (bounded work)...
    refuseIn(tally, 600, later);
    assert.ok(tally.wantsHeld < 600, `${tally.wantsHeld} held after a refusal swept`);
    // ...and a full sweep (the server's timer) the rest, all but the one still wanting.
    tally.sweep(later, MAX_WANTS);
    assert.equal(tally.wantsHeld, 1);
    tally.sweep(later + WANT_MS, MAX_WANTS);
    assert.equal(tally.wantsHeld, 0);
    assert.deepEqual(tally.wanting('10.2.88.0/24', later + WANT_MS), []);
  });

  it('holds at most maxWants, dropping the oldest first', () => {
    const tally = new ClientTally(1, { subnet: 1, network: 0 }, Number.POSITIVE_INFINITY, 3);
    for (let i = 0; i < 4; i++) refuseIn(tally, i, i);
    assert.equal(tally.wantsHeld, 3);
    assert.deepEqual(tally.wanting('10.0.0.0/24', 4), [], 'the oldest went');
    for (let i = 1; i < 4; i++) assert.deepEqual(tally.wanting(`10.0.${i}.0/24`, 4), [`10.0.${i}.2`]);
    // Asking again renews a want without growing the count.
    const again = tally.add('10.0.3.2', 5);
    assert.ok(!again.within);
    tally.remove(again);
    assert.equal(tally.wantsHeld, 3);
    assert.deepEqual(tally.wanting('10.0.1.0/24', 5), ['10.0.1.2']);
    assert.equal(MAX_WANTS, 16_384);
  });

  it('never holds more than maxWants, and holds exactly the live wants it reports (property)', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 3 }).map((n) => n + 1),
        fc.array(
          fc.tuple(
            fc.nat({ max: 9 }).map((n) => n < 8),
            fc.nat({ max: 3 }),
            fc.nat({ max: 3 }),
            fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 2 * WANT_MS })),
            fc.boolean(),
          ),
          { maxLength: 200 },
        ),
        (maxWants, steps) => {
          const tally = new ClientTally(1, { subnet: 2, network: 0 }, Number.POSITIVE_INFINITY, maxWants);
          const open: Tallied[] = [];
          let now = 0;
          const prefixes = Array.from({ length: 4 }, (_, p) => `10.0.${p}.0/24`);
          for (const [add, net, host, wait, sweep] of steps) {
            now += wait;
            const client = `10.0.${net}.${host}`;
            if (add) open.push(tally.add(client, now));
            else {
              const i = open.findIndex((t) => t.client === client);
              if (i !== -1) tally.remove(open.splice(i, 1)[0]!);
            }
            if (sweep) tally.sweep(now);
            assert.ok(tally.wantsHeld <= maxWants, `${tally.wantsHeld} > ${maxWants}`);
            // Each prefix's live wants, counted after wanting() dropped its expired ones: all held.
            let live = 0;
            for (const p of prefixes) live += tally.wanting(p, now).length;
            assert.equal(tally.wantsHeld, live);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('the client behind a trusted proxy (X-Forwarded-For)', () => {
  const proxies = new Set(['10.0.0.1', '10.0.0.2', '2001:db8::1']);

  it('ignores the header from any peer not a trusted proxy: anyone can send one', () => {
    for (const header of ['203.0.113.9', '127.0.0.1', '10.0.0.1', '203.0.113.9, 10.0.0.2'])
      assert.equal(forwardedClient('198.51.100.7', header, proxies), '198.51.100.7', header);
    // And no proxy trusted (the default): the header is never read.
    assert.equal(forwardedClient('10.0.0.1', '203.0.113.9', new Set()), '10.0.0.1');
    assert.equal(forwardedClient('10.0.0.1', undefined, proxies), '10.0.0.1');
  });

  it('takes the right-most untrusted entry, walking past trusted proxies; the client cannot forge it', () => {
    assert.equal(forwardedClient('10.0.0.1', '203.0.113.9', proxies), '203.0.113.9');
    assert.equal(forwardedClient('::ffff:10.0.0.1', '203.0.113.9', proxies), '203.0.113.9');
    // What the client wrote itself (left of the address the first proxy appended) is never read.
    assert.equal(
      forwardedClient('10.0.0.1', '127.0.0.1, 1.1.1.1, 203.0.113.9, 10.0.0.2', proxies),
      '203.0.113.9',
    );
    assert.equal(forwardedClient('10.0.0.1', 'garbage, 203.0.113.9', proxies), '203.0.113.9');
    assert.equal(forwardedClient('10.0.0.1', ['1.1.1.1', '203.0.113.9'], proxies), '203.0.113.9');
    // Spelled any way, an address is as sockets give it.
    assert.equal(forwardedClient('2001:db8::1', '2001:DB8:0:0::7', proxies), '2001:db8::7');
    assert.equal(forwardedClient('10.0.0.1', ' ::FFFF:203.0.113.9 ', proxies), '203.0.113.9');
    // Every entry a trusted proxy: the left-most.
    assert.equal(forwardedClient('10.0.0.1', '10.0.0.2', proxies), '10.0.0.2');
    // Padding the left (the client's part) changes nothing, however long.
    const padded = `${'9.9.9.9, '.repeat(5_000)}203.0.113.9`;
    assert.equal(forwardedClient('10.0.0.1', padded, proxies), '203.0.113.9');
  });

  it('falls back to the proxy itself on a malformed header, and never throws (property)', () => {
    for (const bad of [
      '',
      ' ',
      '203.0.113.9,',
      '203.0.113.9:8080',
      '[2001:db8::7]',
      'fe80::1%eth0',
      'localhost',
      '203.0.113.9 198.51.100.7',
      '203.0.113.256',
      '1'.repeat(MAX_FORWARDED_CHARS + 1),
      `${Array(MAX_FORWARDED_HOPS + 1)
        .fill('10.0.0.2')
        .join(',')}`,
    ]) {
      assert.equal(forwardedClient('10.0.0.1', bad, proxies), '10.0.0.1', JSON.stringify(bad));
    }
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.array(fc.oneof(address, fc.string({ maxLength: 8 }))).map((a) => a.join(',')),
        ),
        fc.constantFrom('10.0.0.1', '198.51.100.7'),
        (header, peer) => {
          const got = forwardedClient(peer, header, proxies);
          if (peer !== '10.0.0.1') return assert.equal(got, peer);
          // The peer itself, or an address written in the header (as unlimitedEntry spells it).
          const written = header.split(',').map((e) => {
            try {
              return unlimitedEntry(e.trim());
            } catch {
              return undefined;
            }
          });
          assert.ok(got === peer || written.includes(got), `${got} from ${JSON.stringify(header)}`);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('rate limits shared by prefix', () => {
  it('rate-limits an IPv4 /24 to 4 addresses and a /16 to 16, however many addresses ask', () => {
    // Before, every IPv4 address had a bucket of its own and nothing more: a /24, 256 bursts.
    const rate = 10;
    const burst = 20;
    const now = 1_000;
    const limiter = new RateLimiter(rate, burst, BOTH_LEVELS);
    const drain = (addr: string, at = now): number => {
      let n = 0;
      while (limiter.take(clientKey(addr), 1, at) === 0) n++;
      return n;
    };
    let slash24 = 0;
    for (let i = 0; i < 256; i++) slash24 += drain(`203.0.113.${i}`);
    assert.equal(slash24, 4 * burst);
    let slash16 = 0;
    for (let i = 0; i < 256; i++) slash16 += drain(`198.51.${i}.1`);
    assert.equal(slash16, 16 * burst);
    // A lone address (in networks of its own) gets its whole burst, IPv4-mapped or not.
    assert.equal(drain('192.0.2.1'), burst);
    assert.equal(drain('::ffff:192.0.2.1'), 0, 'the same address');
    // The /24's bucket refills at 4 times the rate: a second later, 40 more units over the /24.
    let later = 0;
    for (let i = 0; i < 256; i++) later += drain(`203.0.113.${i}`, now + 1_000);
    assert.equal(later, 4 * rate);
  });

  it('grants a prefix at most share × (burst + rate × time), an address burst + rate × time (property)', () => {
    fc.assert(
      fc.property(
        shares,
        fc.array(fc.tuple(address, fc.nat({ max: 500 }), fc.nat({ max: 30 })), { maxLength: 300 }),
        (s, steps) => {
          const rate = 7;
          const burst = 30;
          const limiter = new RateLimiter(rate, burst, s);
          const granted = new Map<string, number>();
          let now = 0;
          for (const [addr, dt, cost] of steps) {
            now += dt;
            const client = clientKey(addr);
            if (limiter.take(client, Math.max(1, cost), now) !== 0) continue;
            for (const { key, share } of levelsOf(client, s)) {
              const n = (granted.get(key) ?? 0) + Math.max(1, cost);
              granted.set(key, n);
              assert.ok(n <= share * (burst + (rate * now) / 1000) + 1e-9, `${key} got ${n} by ${now} ms`);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('charges a prefix what its address was charged, no more: one address cannot empty its /24 with big replies', () => {
    // Replies are charged after the fact (debit) and an address's bucket goes no lower than -burst:
    // the rest of a big reply's charge is forgiven it. Its /24 and /16 were charged the whole reply,
    // so one address asking cheap requests with big replies (16 in progress at once) kept its /24's
    // bucket empty, its neighbours refused, and four such addresses its /16's.
    const rate = 1_000; // a unit per ms: no fractions
    const burst = 20;
    const limiter = new RateLimiter(rate, burst, BOTH_LEVELS);
    const attacker = clientKey('203.0.113.1');
    for (let now = 0; now <= 10_000; now += 7) {
      let admitted = 0;
      while (admitted < 16 && limiter.take(attacker, 1, now) === 0) admitted++;
      for (let i = 0; i < admitted; i++) limiter.debit(attacker, 50 * burst, now);
    }
    // Its neighbour in the /24 (and one in the /16) still has its whole burst.
    for (const neighbour of ['203.0.113.2', '203.0.114.1']) {
      let taken = 0;
      while (limiter.take(clientKey(neighbour), 1, 10_000) === 0) taken++;
      assert.equal(taken, burst, neighbour);
    }
  });

  it('leaves its prefixes at least (share - 2) bursts whatever one address takes and is charged (property)', () => {
    fc.assert(
      fc.property(
        fc.record({ subnet: fc.constantFrom(0, 3, 4, 6), network: fc.constantFrom(0, 3, 5, 16) }),
        fc.array(fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 25 }), fc.nat({ max: 500 })), {
          maxLength: 200,
        }),
        (s, steps) => {
          const rate = 1_000;
          const burst = 20;
          const limiter = new RateLimiter(rate, burst, s);
          const attacker = clientKey('10.20.1.1');
          let now = 0;
          for (const [dt, cost, reply] of steps) {
            now += dt;
            if (limiter.take(attacker, Math.max(1, cost), now) === 0) limiter.debit(attacker, reply, now);
          }
          // The address goes from +burst to -burst at most: its prefixes lose no more than that.
          let taken = 0;
          while (limiter.take(clientKey('10.20.1.2'), 1, now) === 0) taken++;
          assert.equal(taken, burst);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps a lone address whole beside a prefix spending all its share (property)', () => {
    fc.assert(
      fc.property(shares, fc.nat({ max: 255 }), (s, spread) => {
        const limiter = new RateLimiter(5, 10, s);
        for (let i = 0; i <= spread; i++) {
          let taken = 0;
          while (limiter.take(clientKey(`10.20.${i % 4}.${i}`), 1, 0) === 0) taken++;
          assert.ok(taken <= 10);
        }
        let lone = 0;
        while (limiter.take(clientKey('10.21.0.1'), 1, 0) === 0) lone++;
        // 10.21.0.1 shares no /24 with them; its /16 (10.21) neither: its whole burst.
        assert.equal(lone, 10);
      }),
    );
  });

  it('keeps at most MAX_TRACKED_CLIENTS buckets per level, however many addresses pass', () => {
    const limiter = new RateLimiter(1, 10, BOTH_LEVELS);
    // 70,000 IPv6 /64s over 70,000 /48s of 2 /32s: each bucket spent, none prunable as full.
    for (let i = 0; i < 70_000; i++) {
      limiter.take(clientKey(`2001:${(0xdb8 + (i & 1)).toString(16)}:${(i >> 1).toString(16)}:1::1`), 1, 0);
    }
    const [clients, subnets, networks] = limiter.sizes();
    assert.ok(clients! <= MAX_TRACKED_CLIENTS && subnets! <= MAX_TRACKED_CLIENTS, `${clients} ${subnets}`);
    assert.equal(networks, 2);
  });
});

describe('the WebSocket line shared by prefix', () => {
  const MiB = 1024 * 1024;

  it('gives a /24 (or /48) 4 places and a /16 (or /32) 16, a lone address its one', () => {
    // Before, a place per address: a /24 of attackers took 256 places, a NAT of honest clients one.
    const line = new WsLine(1_000, BOTH_LEVELS);
    for (let i = 0; i < 256; i++) line.refused(`203.0.113.${i}`, MiB, 'big');
    assert.equal(line.size, 4);
    assert.equal(line.placesOf('203.0.113.0/24'), 4);
    for (let i = 0; i < 256; i++) line.refused(`203.0.${i}.1`, MiB, 'big');
    assert.equal(line.placesOf('203.0.0.0/16'), 16);
    for (let i = 0; i < 65_536; i += 97)
      line.refused(clientKey(`2001:db8:${i.toString(16)}:1::1`), MiB, 'big');
    assert.equal(line.placesOf('2001:db8::/32'), 16);
    line.refused('192.0.2.1', MiB, 'big');
    assert.ok(line.get('192.0.2.1'), 'a lone address gets its place');
    assert.equal(line.size, 16 + 16 + 1);
  });

  it('orders by prefix first: a client of a /24 that holds much waits behind a lone one', () => {
    const place = (seq: number): WsPlace => ({ bytes: 24 * MiB, kind: 'big', seq, round: 0, due: false });
    // 10.0.0.1 holds nothing itself, but its /24 holds 64 MiB (16 MiB an address of its share of 4);
    // the lone 192.0.2.1 holds 8 MiB: it goes first, though refused later.
    const held = new Map([
      ['10.0.0.0/24', 64 * MiB],
      ['10.0.0.0/16', 64 * MiB],
      ['192.0.2.1', 8 * MiB],
      ['192.0.2.0/24', 8 * MiB],
      ['192.0.0.0/16', 8 * MiB],
    ]);
    const line = new Map([
      ['10.0.0.1', place(1)],
      ['192.0.2.1', place(2)],
    ]);
    assert.equal(roomAhead(line, '192.0.2.1', held), 0);
    assert.equal(roomAhead(line, '10.0.0.1', held), 24 * MiB);
  });

  it('makes the head due at a round; refused all the same, it goes to the back', () => {
    const line = new WsLine(16, BOTH_LEVELS);
    line.refused('10.0.0.1', 24 * MiB, 'big');
    line.refused('10.1.0.1', 24 * MiB, 'big');
    const none = new Map<string, number>();
    line.endRound(none);
    assert.ok(line.due('10.0.0.1', 'big'), 'the first refused is the head: the round made room for it');
    assert.ok(!line.due('10.0.0.1', 'small'), 'due only for what it waits for');
    assert.ok(!line.due('10.1.0.1', 'big'));
    assert.ok(line.dueFor('10.0.0.1', 12 * MiB, 'big') && !line.dueFor('10.0.0.1', 12 * MiB, 'other'));
    assert.equal(line.ahead('10.1.0.1', none), 24 * MiB);
    // Refused a small reply to something else (a poll), it stays due, its place not renewed by it.
    line.refused('10.0.0.1', MiB, 'poll');
    assert.ok(line.due('10.0.0.1', 'big'));
    assert.equal(line.get('10.0.0.1')?.round, 0);
    // Events took its room and it was refused again: to the back, the other is the head now.
    line.refused('10.0.0.1', 24 * MiB, 'big');
    assert.ok(!line.due('10.0.0.1', 'big'));
    assert.equal(line.ahead('10.0.0.1', none), 24 * MiB);
    assert.equal(line.ahead('10.1.0.1', none), 0);
    // The same for a retry refused unrun.
    line.refused('10.1.0.1', 24 * MiB, 'big');
    line.endRound(none);
    assert.ok(line.due('10.1.0.1', 'big'));
    assert.equal(line.refusedUnrun('10.1.0.1', 'big'), 24 * MiB);
    assert.equal(line.ahead('10.1.0.1', none), 24 * MiB, 'behind 10.0.0.1 now');
    // A due client that is booked its reply leaves the line.
    line.refused('10.0.0.1', 24 * MiB, 'big');
    line.endRound(none);
    assert.ok(line.due('10.0.0.1', 'big'));
    line.booked('10.0.0.1', 24 * MiB, 'big');
    assert.equal(line.get('10.0.0.1'), undefined);
  });

  it('bounds places per prefix and in all, keeps one due at most, and never leaves the head there twice (property)', () => {
    type Op =
      | { op: 'refused'; addr: string; bytes: number; kind: string }
      | { op: 'unrun'; addr: string; kind: string }
      | { op: 'booked'; addr: string; bytes: number; kind: string }
      | { op: 'leave'; addr: string }
      | { op: 'round'; held: Array<[string, number]> };
    const kind = fc.constantFrom('big', 'other');
    const bytes = fc.integer({ min: 1, max: 32 }).map((n) => n * MiB);
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('refused' as const), addr: address, bytes, kind }),
      fc.record({ op: fc.constant('unrun' as const), addr: address, kind }),
      fc.record({ op: fc.constant('booked' as const), addr: address, bytes, kind }),
      fc.record({ op: fc.constant('leave' as const), addr: address }),
      fc.record({
        op: fc.constant('round' as const),
        held: fc.array(fc.tuple(address, bytes), { maxLength: 4 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        shares,
        fc.array(op, { maxLength: 120 }),
        (capacity, s, ops) => {
          const line = new WsLine(capacity, s);
          for (const o of ops) {
            if (o.op === 'round') {
              const held = new Map<string, number>();
              for (const [addr, b] of o.held) {
                for (const { key } of levelsOf(clientKey(addr), s)) held.set(key, (held.get(key) ?? 0) + b);
              }
              line.endRound(held);
              const due = [...line.entries].filter(([, p]) => p.due);
              assert.ok(due.length === (line.size > 0 ? 1 : 0), 'the head, and only it, is due');
              if (due.length === 1) assert.equal(line.ahead(due[0]![0], held), 0, 'no one is ahead of it');
              continue;
            }
            const client = clientKey(o.addr);
            const found = line.get(client);
            const before = found ? { ...found } : undefined;
            const wasDue = before?.due === true;
            const lone = [...line.entries.keys()].every((c) => c === client || !prefixShared(c, client, s));
            const size = line.size;
            if (o.op === 'refused') line.refused(client, o.bytes, o.kind);
            else if (o.op === 'unrun') line.refusedUnrun(client, o.kind);
            else if (o.op === 'booked') line.booked(client, o.bytes, o.kind);
            else line.leave(client);
            const after = line.get(client);
            if (o.op === 'refused' && before === undefined && lone && size < capacity) {
              assert.ok(after, 'a lone address gets a place while there is room');
            }
            // A refusal renews a place only for what it waits for, or a larger reply; a due place
            // renewed so (refused again) goes to the back: behind every other place.
            const renewed =
              before !== undefined &&
              ((o.op === 'refused' && (o.bytes > before.bytes || o.kind === before.kind)) ||
                (o.op === 'unrun' && o.kind === before.kind));
            if (before && after && (o.op === 'refused' || o.op === 'unrun') && !renewed) {
              assert.deepEqual(after, before, 'a refusal of something else changes nothing');
            }
            if (wasDue && after && renewed) {
              assert.ok(!after.due);
              for (const [c, p] of line.entries) if (c !== client) assert.ok(p.seq < after.seq);
            }
            // Bounds: in all, and per prefix its share.
            assert.ok(line.size <= capacity);
            const count = new Map<string, number>();
            let most = 0;
            for (const [c, p] of line.entries) {
              most = Math.max(most, p.bytes);
              for (const { key } of levelsOf(c, s).slice(1)) count.set(key, (count.get(key) ?? 0) + 1);
            }
            for (const [key, n] of count) {
              assert.equal(line.placesOf(key), n);
              const share = key.endsWith('/24') || key.endsWith('/48') ? s.subnet : s.network;
              assert.ok(n <= share, `${key} holds ${n} places, over its share ${share}`);
            }
            assert.ok(line.most >= most);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
