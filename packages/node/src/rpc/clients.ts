/**
 * Who an RPC client is, for the per-IP limits: an address (an IPv4 address, an IPv6 /64), and the
 * networks it belongs to, each of which shares one larger cap among all of its addresses.
 *
 * Addresses are cheap in blocks: a /24 of IPv4 or a /48 of IPv6 (65,536 /64s) is rented by the
 * month. Per-address caps alone give such a block 256 or 65,536 times the share of one honest
 * client, so every per-IP limit is also held per prefix, in a hierarchy: an IPv4 address counts
 * under its /24 and its /16, an IPv6 /64 under its /48 and its /32 (an IPv4-mapped IPv6 address is
 * its IPv4 address). A prefix gets `share` addresses' worth of each limit (PrefixShares), shared by
 * all of its addresses, fairly where they want more than it holds (ClientTally): one address alone
 * is held to its own cap and never to less, however its prefixes stand; many addresses of one prefix
 * together get one prefix's share.
 *
 * The trade-off: addresses of one prefix share its cap whoever holds them. Honest clients spread
 * over one /24 (a carrier NAT's pool, an office's addresses) get four addresses' worth between them,
 * not one each, and a client shares its /24's (and /16's) cap with whoever else sends from it, an
 * attacker included. One NAT address, however many people are behind it, keeps a whole address's
 * share: the prefix caps are multiples of the address cap, and an address's own sockets refused
 * over its own cap never count toward its prefixes. An operator whose clients come from one
 * network (a farm on one LAN, a pool of proxies) lists them as unlimited or raises the shares (0
 * turns a level off).
 */
import { normalAddress, prefixesOf, unlimitedEntry } from '../ip-groups.js';

// The address logic is shared with the p2p connection gater (ip-groups.ts).
export { clientKey, normalAddress, prefixesOf, unlimitedEntry } from '../ip-groups.js';

/** How many addresses' worth of each per-IP limit a whole prefix gets (0: no cap at that level). */
export interface PrefixShares {
  /** An IPv4 /24 or an IPv6 /48. */
  readonly subnet: number;
  /** An IPv4 /16 or an IPv6 /32. */
  readonly network: number;
}

/** A /24 or /48 gets 4 addresses' worth; the /16 or /32 level is off unless networkShare is set. */
export const DEFAULT_PREFIX_SHARES: PrefixShares = Object.freeze({ subnet: 4, network: 0 });

/** One level a client is counted at: its key, and how many addresses' worth its cap is. */
export interface Level {
  readonly key: string;
  readonly share: number;
}

/** The levels a client is counted at: itself (share 1), then each prefix whose share is not 0. */
export function levelsOf(client: string, shares: PrefixShares): Level[] {
  const levels: Level[] = [{ key: client, share: 1 }];
  const prefixes = prefixesOf(client);
  if (prefixes === undefined) return levels;
  if (shares.subnet > 0) levels.push({ key: prefixes[0], share: shares.subnet });
  if (shares.network > 0) levels.push({ key: prefixes[1], share: shares.network });
  return levels;
}

/** The words for a level in an error message: "your address", or "your network 10.1.2.0/24". */
export function describeLevel(level: Level): string {
  return level.share === 1 ? 'your address' : `your network ${level.key}`;
}

/** What one ClientTally.add counted: the client, and the prefixes when it counted toward them too. */
export interface Tallied {
  readonly client: string;
  readonly prefixes: readonly string[];
  /** Whether it stayed within the client's cap and every prefix's. */
  readonly within: boolean;
}

/**
 * How long an address refused at its network's cap, while holding less than its fair part there,
 * counts as wanting in (ClientTally): long enough to span a client's retries (Retry-After is 1 s),
 * short enough that one gone for good holds its neighbours to their fair part only briefly.
 */
export const WANT_MS = 10_000;

/**
 * The clock ClientTally's wants are timed by: monotonic, so that a step of the wall clock (NTP, an
 * operator) neither keeps a neighbour that left wanting in for as long as the step back, nor cuts
 * WANT_MS short.
 */
export function tallyNow(): number {
  return performance.now();
}

/**
 * The most wants (ClientTally.ask) one tally holds over all its prefixes: 16,384 addresses waiting
 * for a slot at once is far past any real crowd of neighbours, and at ~80 bytes each ~1.3 MB.
 */
export const MAX_WANTS = 16_384;

/** The most wants one sweep looks at (ClientTally.sweep): bounded work on each refusal. */
export const SWEEP_SLICE = 256;

/** A want's key in ClientTally's order of them (no address or prefix holds a newline). */
function wantKey(prefix: string, client: string): string {
  return `${prefix}\n${client}`;
}

/**
 * The fewest networks (prefixes) that always fit in a server-wide total (maxConnections,
 * maxWsConnections): a prefix holds at most total / MIN_NETWORKS of it (ClientTally's `most`), unless
 * one address's own cap is more (an address alone is never held below its own cap).
 */
export const MIN_NETWORKS = 8;

/**
 * Counts of something (open sockets, messages in progress) per client, capped at `limit` each and
 * per prefix at `limit` × share (levelsOf), and at most `most` (a fraction of a server-wide total,
 * MIN_NETWORKS) unless that is below `limit`. A prefix counts only what was admitted: a client
 * opening sockets past a cap (each refused, but open until its refusal is out) keeps itself over
 * its own cap, and fills none of its prefixes' counts, so it cannot lock out its neighbours with
 * sockets it was refused.
 *
 * Fairness within a prefix: an address refused at a prefix's cap while holding less than its fair
 * part there (the cap over the addresses holding or wanting some of it) wants in for WANT_MS; while
 * another address wants in, an address holding its fair part or more is refused more, so what its
 * own connections free goes to the one waiting. Before, the prefix was first come first served: the
 * addresses that filled it took back every slot they freed, and a neighbour (behind the same campus
 * NAT range, in the same cloud /24) stayed locked out for as long as they kept reconnecting. The
 * tally takes nothing back itself: a holder's surplus goes as its own connections close, or as the
 * server closes idle ones of a holder over its fair part (surplus()).
 *
 * Memory: an entry per key with something counted; wants only for prefixes that hold something,
 * at most the prefix's cap of them each, and at most `maxWants` in all (the oldest dropped first).
 * Expired wants are swept a slice at a time (sweep(): on each refusal, and on the server's timer):
 * before, they went only when their own prefix was next asked about, and an IPv6 client with 1,024
 * /48s to come from left 131,072 of them (~10 MB) held for good.
 */
export class ClientTally {
  private readonly counts = new Map<string, number>();
  /** Per client: how many of its own were admitted (counted toward its prefixes). */
  private readonly admitted = new Map<string, number>();
  /** Per prefix: how many clients hold something admitted in it. */
  private readonly members = new Map<string, number>();
  /** Per prefix: the clients that want in, and until when (WANT_MS). */
  private readonly wants = new Map<string, Map<string, number>>();
  /**
   * Every want (wantKey), oldest first: re-set on each ask, with until = now + WANT_MS on a
   * monotonic clock, so this is also the order they expire in.
   */
  private readonly wantOrder = new Map<string, readonly [prefix: string, client: string]>();

  constructor(
    private readonly limit: number,
    private readonly shares: PrefixShares = DEFAULT_PREFIX_SHARES,
    private readonly most = Number.POSITIVE_INFINITY,
    private readonly maxWants = MAX_WANTS,
  ) {}

  /** How many wants it holds, over every prefix (each at most maxWants). */
  get wantsHeld(): number {
    return this.wantOrder.size;
  }

  /**
   * Forgets wants expired by `now`, the oldest first, looking at `budget` of them at most: an
   * expired want kept costs memory only (wantsOf drops it before it counts).
   */
  sweep(now = tallyNow(), budget = SWEEP_SLICE): void {
    for (const [key, [prefix, client]] of this.wantOrder) {
      if (budget-- <= 0) return;
      const until = this.wants.get(prefix)?.get(client);
      // Asked with an earlier `now` than the one before it (only a caller's own clock does): the
      // order is by asking, so this one is just stopped at.
      if (until !== undefined && until > now) return;
      this.wantOrder.delete(key);
      if (until !== undefined) this.dropWant(prefix, client);
    }
  }

  private setWant(prefix: string, wants: Map<string, number>, client: string, until: number): void {
    const key = wantKey(prefix, client);
    this.wantOrder.delete(key);
    if (!wants.has(client)) {
      // Full: the oldest goes (an address that asked the longest ago; its own retry asks again).
      for (const [oldest, [p, c]] of this.wantOrder) {
        if (this.wantOrder.size < this.maxWants) break;
        this.wantOrder.delete(oldest);
        this.dropWant(p, c);
      }
    }
    wants.set(client, until);
    // Dropping the oldest may have emptied (and forgotten) this very prefix's map.
    this.wants.set(prefix, wants);
    this.wantOrder.set(key, [prefix, client]);
  }

  /** Forgets one want (and its prefix's map once empty). */
  private dropWant(prefix: string, client: string): void {
    this.wantOrder.delete(wantKey(prefix, client));
    const wants = this.wants.get(prefix);
    if (wants?.delete(client) && wants.size === 0) this.wants.delete(prefix);
  }

  /** Forgets every want of a prefix (at most its cap of them). */
  private dropWants(prefix: string): void {
    for (const client of this.wants.get(prefix)?.keys() ?? []) this.wantOrder.delete(wantKey(prefix, client));
    this.wants.delete(prefix);
  }

  /** The cap of a level: the client's own (the first level), or a prefix's. */
  private capOf(level: Level, own: boolean): number {
    if (own) return this.limit;
    return Math.min(this.limit * level.share, Math.max(this.limit, this.most));
  }

  /** Its cap (a level of levelsOf: the client itself first). */
  cap(client: string, key: string): number | undefined {
    const levels = levelsOf(client, this.shares);
    const i = levels.findIndex((l) => l.key === key);
    return i === -1 ? undefined : this.capOf(levels[i]!, i === 0);
  }

  /** The live wants of a prefix (expired ones dropped). */
  private wantsOf(prefix: string, now: number): Map<string, number> | undefined {
    const wants = this.wants.get(prefix);
    if (wants === undefined) return undefined;
    for (const [client, until] of wants) if (until <= now) this.dropWant(prefix, client);
    return this.wants.get(prefix);
  }

  /** The client's fair part of a prefix's cap: the cap over the clients holding or wanting some. */
  private fairPart(client: string, prefix: string, cap: number, now: number): number {
    let n = this.members.get(prefix) ?? 0;
    if ((this.admitted.get(client) ?? 0) === 0) n++;
    for (const other of this.wantsOf(prefix, now)?.keys() ?? []) {
      if (other !== client && (this.admitted.get(other) ?? 0) === 0) n++;
    }
    return Math.max(1, Math.floor(cap / n));
  }

  /** Whether a client other than `client` wants in to the prefix. */
  private othersWant(client: string, prefix: string, now: number): boolean {
    const wants = this.wantsOf(prefix, now);
    return wants !== undefined && (wants.size > 1 || !wants.has(client));
  }

  /**
   * The level (the client itself, or a prefix) whose cap one more of the client's would pass, or
   * where it holds its fair part while another address of that prefix wants in. Counts nothing.
   */
  over(client: string, now = tallyNow()): Level | undefined {
    const levels = levelsOf(client, this.shares);
    const mine = this.admitted.get(client) ?? 0;
    for (const [i, level] of levels.entries()) {
      const cap = this.capOf(level, i === 0);
      if ((this.counts.get(level.key) ?? 0) >= cap) return level;
      if (
        i > 0 &&
        this.othersWant(client, level.key, now) &&
        mine >= this.fairPart(client, level.key, cap, now)
      ) {
        return level;
      }
    }
    return undefined;
  }

  /** Whether one more of the client's would stay within every cap (counts nothing). */
  fits(client: string, now = tallyNow()): boolean {
    return this.over(client, now) === undefined;
  }

  /**
   * over(), and when a prefix refused the client while it holds less than its fair part there, the
   * client wants in to it (for WANT_MS): what its neighbours free is kept for it.
   */
  ask(client: string, now = tallyNow()): Level | undefined {
    const refused = this.over(client, now);
    if (refused === undefined) return refused;
    this.sweep(now);
    if (refused.key === client) return refused;
    const cap = this.capOf(refused, false);
    if ((this.admitted.get(client) ?? 0) >= this.fairPart(client, refused.key, cap, now)) return refused;
    let wants = this.wantsOf(refused.key, now);
    if (wants === undefined) {
      wants = new Map();
      this.wants.set(refused.key, wants);
    }
    // At most a cap's worth of them: past that, every fair part is 1 already.
    if (wants.has(client) || wants.size < cap) this.setWant(refused.key, wants, client, now + WANT_MS);
    return refused;
  }

  /**
   * Whether the client holds more than its fair part of a prefix while another address of it wants
   * in: one of its HTTP sockets may then be closed for the one waiting (at once when idle, else
   * once its reply is out). Without that, two addresses (each at its own cap, together a /24's 128 sockets) kept
   * their keep-alive sockets busy enough to stay open and locked every neighbour out for good.
   */
  surplus(client: string, prefix: string, now = tallyNow(), leaving = 0): boolean {
    const levels = levelsOf(client, this.shares);
    const i = levels.findIndex((l) => l.key === prefix);
    if (i <= 0 || !this.othersWant(client, prefix, now)) return false;
    // `leaving`: those of its already being taken back, still counted until they close.
    const mine = (this.admitted.get(client) ?? 0) - leaving;
    return mine > this.fairPart(client, prefix, this.capOf(levels[i]!, false), now);
  }

  /** The clients that want in to a prefix now (ask()). */
  wanting(prefix: string, now = tallyNow()): string[] {
    return [...(this.wantsOf(prefix, now)?.keys() ?? [])];
  }

  /** Its count now (a client key, or a prefix's from prefixesOf). */
  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /**
   * Counts one more of the client's: toward its prefixes only when it is within every cap (ask():
   * a client refused at a prefix may want in).
   */
  add(client: string, now = tallyNow()): Tallied {
    const levels = levelsOf(client, this.shares);
    const within = this.ask(client, now) === undefined;
    const prefixes = within ? levels.slice(1).map((l) => l.key) : [];
    this.bump(this.counts, client, 1);
    if (within) {
      const mine = this.bump(this.admitted, client, 1);
      for (const key of prefixes) {
        this.bump(this.counts, key, 1);
        if (mine === 1) this.bump(this.members, key, 1);
        // In: what it wanted came; wanting more, it asks again.
        this.dropWant(key, client);
      }
    }
    return { client, prefixes, within };
  }

  /** Counts one fewer: undoes what one add() counted (its return value). */
  remove(counted: Tallied): void {
    this.bump(this.counts, counted.client, -1);
    if (counted.prefixes.length === 0) return;
    const mine = this.bump(this.admitted, counted.client, -1);
    for (const key of counted.prefixes) {
      if (mine === 0) this.bump(this.members, key, -1);
      // A prefix holding nothing has nothing to share out: its wants go (so they stay bounded).
      if (this.bump(this.counts, key, -1) === 0) this.dropWants(key);
    }
  }

  private bump(map: Map<string, number>, key: string, by: number): number {
    const n = (map.get(key) ?? 0) + by;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
    return Math.max(0, n);
  }
}

/** Token buckets kept at most in each table (idle full ones are dropped first). */
export const MAX_TRACKED_CLIENTS = 65_536;

/** Token buckets per key: `rate` units a second, at most `burst` saved up. */
class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  /** The key's bucket, refilled up to `now` (created full). */
  private bucket(key: string, now: number): { tokens: number; at: number } {
    let bucket = this.buckets.get(key);
    if (bucket) {
      // A clock that went back (only a wall clock does; RateLimiter's default does not) refills
      // nothing, rather than draining the bucket for as long as the step.
      bucket.tokens = Math.min(this.burst, bucket.tokens + (Math.max(0, now - bucket.at) * this.rate) / 1000);
      bucket.at = Math.max(bucket.at, now);
    } else {
      if (this.buckets.size >= MAX_TRACKED_CLIENTS) this.prune(now);
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  /** 0 when `cost` units are there now, else the ms until they would be; takes nothing. */
  wait(key: string, cost: number, now: number): number {
    const want = Math.min(cost, this.burst);
    const bucket = this.bucket(key, now);
    if (bucket.tokens >= want) return 0;
    return Math.max(1, Math.ceil(((want - bucket.tokens) * 1000) / this.rate));
  }

  /**
   * Takes `cost` units: after wait() said they are there, a cost over the burst costs the burst
   * (as wait() asked for no more); work charged after the fact (`debt`) may go down to -burst.
   * Returns the units taken (the rest of a debt past -burst is forgiven).
   */
  spend(key: string, cost: number, now: number, debt = false): number {
    const bucket = this.bucket(key, now);
    const amount = debt ? cost : Math.min(cost, this.burst);
    const before = bucket.tokens;
    bucket.tokens = Math.max(-this.burst, bucket.tokens - amount);
    return Math.max(0, before - bucket.tokens);
  }

  /** How many keys it holds. */
  get size(): number {
    return this.buckets.size;
  }

  /** Forgets keys whose bucket has refilled (they are indistinguishable from new ones). */
  prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (Math.max(0, now - b.at) * this.rate) / 1000 >= this.burst) this.buckets.delete(key);
    }
    // Still full of active clients: forget the oldest, which at worst hands them a fresh burst. A
    // sixteenth of the table goes at once: freeing one slot would make every new client (an IPv6
    // /48 has 65,536 /64s to come from) pay for a scan of the whole table.
    for (const key of this.buckets.keys()) {
      if (this.buckets.size < MAX_TRACKED_CLIENTS - MAX_TRACKED_CLIENTS / 16) break;
      this.buckets.delete(key);
    }
  }
}

/**
 * Token buckets per client (an IPv4 address or an IPv6 /64): `rate` units a second, at most `burst`
 * saved up; a client also draws on the bucket of each of its prefixes, of share times that rate and
 * burst (levelsOf). A request runs only when every bucket has its units, and a refused one costs
 * none of them. Each level's buckets are a table of their own, so that addresses cycling through
 * their prefix (a /48 has 65,536 /64s) cannot crowd the prefix's bucket out of its table and come
 * back to a full one; each table holds at most MAX_TRACKED_CLIENTS buckets.
 *
 * Time is `clock` (ms), monotonic by default: on the wall clock, a step forward (NTP, an operator)
 * handed every client a full burst at once, and a step back of an hour left every bucket draining
 * for that hour, refusing everyone the node serves.
 */
export class RateLimiter {
  /** Per level: clients, then subnets, then networks (those with a share). */
  private readonly tables: TokenBuckets[];

  constructor(
    private readonly rate: number,
    burst: number,
    private readonly shares: PrefixShares = DEFAULT_PREFIX_SHARES,
    private readonly clock: () => number = tallyNow,
  ) {
    this.tables = [1, shares.subnet, shares.network].map((s) => new TokenBuckets(rate * s, burst * s));
  }

  /** The bucket table of each level of the client's, with its key. */
  private levels(client: string): Array<[TokenBuckets, string]> {
    const prefixes = prefixesOf(client);
    const out: Array<[TokenBuckets, string]> = [[this.tables[0]!, client]];
    if (prefixes === undefined) return out;
    if (this.shares.subnet > 0) out.push([this.tables[1]!, prefixes[0]]);
    if (this.shares.network > 0) out.push([this.tables[2]!, prefixes[1]]);
    return out;
  }

  /** Takes `cost` units; returns 0 when they were taken, else the ms until they would be there. */
  take(client: string, cost: number, now = this.clock()): number {
    if (this.rate <= 0) return 0;
    const levels = this.levels(client);
    // Every bucket must have the units before any is charged: a refusal costs nothing.
    let wait = 0;
    for (const [table, key] of levels) wait = Math.max(wait, table.wait(key, cost, now));
    if (wait > 0) return wait;
    this.charge(levels, cost, now, false);
    return 0;
  }

  /** Charges work found only once it is done (reply bytes); the buckets may go into debt. */
  debit(client: string, cost: number, now = this.clock()): void {
    if (this.rate <= 0 || cost <= 0) return;
    this.charge(this.levels(client), cost, now, true);
  }

  /**
   * Charges the client's bucket, then each prefix's exactly what the client's took: a prefix is
   * charged no more than its addresses were, so one address spends at most its own share of it.
   * Charging the prefixes the whole cost let one address, its bucket held at -burst (the rest of
   * a big reply's charge forgiven it), keep its /24's bucket empty with cheap requests for big
   * replies, and four addresses their /16's.
   */
  private charge(levels: Array<[TokenBuckets, string]>, cost: number, now: number, debt: boolean): void {
    const [[own, client], ...prefixes] = levels as [[TokenBuckets, string], ...Array<[TokenBuckets, string]>];
    const taken = own.spend(client, cost, now, debt);
    for (const [table, key] of prefixes) table.spend(key, taken, now, true);
  }

  /** Buckets held, per level (clients, subnets, networks): each at most MAX_TRACKED_CLIENTS. */
  sizes(): number[] {
    return this.tables.map((t) => t.size);
  }

  prune(now = this.clock()): void {
    for (const table of this.tables) table.prune(now);
  }
}

/** The most of an X-Forwarded-For header read, from its right end (its left is the client's to write). */
export const MAX_FORWARDED_CHARS = 1_024;

/** The most entries of X-Forwarded-For walked (each a trusted proxy but the last). */
export const MAX_FORWARDED_HOPS = 16;

/**
 * The address a request comes from, given its socket's peer and its X-Forwarded-For header: the
 * peer, unless the peer is a trusted proxy (`trusted`: unlimitedEntry forms); then the right-most
 * entry of the header that is not a trusted proxy, walking from the right (each proxy appends the
 * address it was reached from, so only the entries right of the first untrusted one were written by
 * proxies we trust; the rest are the client's to forge, and never read). All entries trusted: the
 * left-most. A header from any other peer is ignored: anyone can send one. Malformed where it is
 * read (an entry that is not one IP address: empty, a port, brackets, a name), longer than
 * MAX_FORWARDED_HOPS hops, or absent: the peer (the proxy) itself. Only the last MAX_FORWARDED_CHARS
 * are read, so a client padding the header cannot make this cost more, nor be counted as its proxy.
 */
export function forwardedClient(
  peer: string | undefined,
  header: string | readonly string[] | undefined,
  trusted: ReadonlySet<string>,
): string | undefined {
  if (trusted.size === 0 || header === undefined || !trusted.has(normalAddress(peer))) return peer;
  // Node joins repeated X-Forwarded-For headers with ', ': a proxy's own line comes last either way.
  const text = typeof header === 'string' ? header : header.join(', ');
  const cut = text.length > MAX_FORWARDED_CHARS;
  const tail = cut ? text.slice(text.length - MAX_FORWARDED_CHARS) : text;
  let end = tail.length;
  for (let hop = 0; hop < MAX_FORWARDED_HOPS; hop++) {
    const start = end === 0 ? 0 : tail.lastIndexOf(',', end - 1) + 1;
    // The read part began mid-entry: that entry may be cut short.
    if (start === 0 && cut) return peer;
    const entry = tail.slice(start, end).trim();
    // An IPv6 address is at most 45 characters; a zone (%eth0) names the proxy's interface, not a client.
    if (entry.length > 45 || entry.includes('%')) return peer;
    let address: string;
    try {
      address = unlimitedEntry(entry);
    } catch {
      return peer;
    }
    if (!trusted.has(address) || start === 0) return address;
    end = start - 1;
  }
  return peer;
}
