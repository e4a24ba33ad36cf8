/**
 * The line for room in the total of unsent WebSocket bytes (RpcLimits.maxWsBufferedBytesTotal):
 * clients refused a reply BUSY for want of room wait in it, and room freed goes first to them. Pure:
 * the server tells it who was refused, what was booked and when a ping round passed, and asks it
 * how much room to keep for those ahead of a client.
 */
import { DEFAULT_PREFIX_SHARES, levelsOf, type PrefixShares } from './clients.js';

/** A client's place in the line (see roomAhead). */
export interface WsPlace {
  /** The largest reply refused it (its real size: a request refused unrun makes no place). */
  bytes: number;
  /** What that reply answered (the method, or a batch): a reply to it ends the place. */
  kind: string;
  /**
   * Its order among clients holding as much: when it first was refused, or, once a ping round made
   * room for it and it was refused again all the same, when that was (the back of the line).
   */
  seq: number;
  /** The ping round it last was refused in. */
  round: number;
  /**
   * Whether the last ping round made room for it, as the head of the line: its next reply to what
   * it waits for is booked even if events have taken that room since (see WsLine.due).
   */
  due: boolean;
}

/**
 * What a client holds unsent, for its place in the line: its own bytes, or its prefixes' bytes per
 * address of their share (levelsOf), whichever is more: a client whose /24 or /16 (IPv6: /48 or
 * /32) holds much counts as holding much, however little it holds itself, so the line is shared by
 * prefix first, then by address.
 */
export function heldBy(
  client: string,
  held: ReadonlyMap<string, number>,
  shares: PrefixShares = DEFAULT_PREFIX_SHARES,
): number {
  let most = 0;
  for (const { key, share } of levelsOf(client, shares)) most = Math.max(most, (held.get(key) ?? 0) / share);
  return most;
}

/** Whether the place `a` (of a client holding `heldA`) is ahead of the place `b` (holding `heldB`). */
function before(a: WsPlace | undefined, heldA: number, b: WsPlace | undefined, heldB: number): boolean {
  if (heldA !== heldB) return heldA < heldB;
  return (a?.seq ?? Number.POSITIVE_INFINITY) < (b?.seq ?? Number.POSITIVE_INFINITY);
}

/**
 * Room in the total kept for the clients ahead of `client` in the line: those refused that hold
 * less than it does (heldBy), or as much and are before it in the line (seq), the largest reply any
 * of them was refused. Without it, room freed after a BUSY went to whoever asked first: an attacker
 * asking right after each ping round (and reading at the floor) kept honest big replies refused for
 * ever. Ordered by bytes held, so that a client holding more than others who wait (its share) gets
 * no more until they have had theirs. The largest, not the sum: clients that get in line and never
 * come back keep one reply's room, at most, for at most two rounds.
 */
export function roomAhead(
  line: ReadonlyMap<string, WsPlace>,
  client: string,
  held: ReadonlyMap<string, number>,
  shares: PrefixShares = DEFAULT_PREFIX_SHARES,
): number {
  const mine = heldBy(client, held, shares);
  const place = line.get(client);
  let room = 0;
  for (const [other, wait] of line) {
    if (other === client) continue;
    if (before(wait, heldBy(other, held, shares), place, mine)) room = Math.max(room, wait.bytes);
  }
  return room;
}

/**
 * A request of `kind` refused before it runs (no reply could fit): whether it renews its client's
 * place in line, and the room it asks the next ping round to make. Its size unknown, it asks for
 * one byte, or its place's real size when it retries what the place waits for; only such a retry
 * renews the place. A guessed size (maxResponseBytes) kept that much room from everyone for two
 * rounds, even for a client gone at once; renewing on any request kept alive, for a client polling
 * something else, a place (and the room made for it) for a reply it no longer asks for.
 */
export function refusedUnrun(place: Pick<WsPlace, 'bytes' | 'kind'> | undefined, kind: string) {
  const retry = place !== undefined && place.kind === kind;
  return { renew: retry, roomBytes: retry ? place.bytes : 1 };
}

/**
 * Whether a reply of `bytes` to `kind` is what a place waits for: a reply at least as large, or one
 * to the same kind at least half as large (the data asked for may have changed a little). Any reply
 * ending it let one small poll on the same WebSocket, or from anyone behind the same address, throw
 * the place away, and the attacker took the room again.
 */
export function endsPlace(place: Pick<WsPlace, 'bytes' | 'kind'>, bytes: number, kind: string): boolean {
  return bytes >= place.bytes || (kind === place.kind && 2 * bytes >= place.bytes);
}

/**
 * The places in line, at most one per client, `capacity` in all, and per prefix at most its share
 * (PrefixShares: a /24 or /48 four places at the defaults; a /16 or /32 networkShare, when set), so that many
 * addresses of one prefix hold one prefix's places, not one each; a client left out is still
 * refused, only without a place kept for it. A place lasts until the reply it waits for is booked
 * (endsPlace), until the end of the ping round after its last refusal (the round that made room for
 * it), or until its client leaves (no WebSocket open any more).
 *
 * At each ping round, the head of the line (no one ahead of it: roomAhead is 0) is due: the room the
 * round made was for it. A due client's next reply to what it waits for is booked even if events
 * (which do not wait in line) have filled that room since, and a due place refused all the same
 * for want of room goes to the back of the line: before, events arriving after each round kept the
 * head's retries refused, so it stayed at the head, with room kept for it from everyone behind, for
 * as long as it kept asking, and an attacker asking only when the total was full held the line that
 * way. (Refused over its own connection's cap, it is not renewed: it goes at the next round.)
 */
export class WsLine {
  private readonly places = new Map<string, WsPlace>();
  /** Places per prefix (the keys of levelsOf past the client's own). */
  private readonly perPrefix = new Map<string, number>();
  private seq = 0;
  private round = 0;
  /** The largest place in the line (at least): no room kept for anyone ahead can be more. */
  most = 0;

  constructor(
    private readonly capacity: number,
    private readonly shares: PrefixShares = DEFAULT_PREFIX_SHARES,
  ) {}

  get size(): number {
    return this.places.size;
  }

  /** The places, by client (read-only; for roomAhead). */
  get entries(): ReadonlyMap<string, WsPlace> {
    return this.places;
  }

  get(client: string | null): WsPlace | undefined {
    return client === null ? undefined : this.places.get(client);
  }

  /** Places held by a prefix (a key of prefixesOf). */
  placesOf(prefix: string): number {
    return this.perPrefix.get(prefix) ?? 0;
  }

  /** Whether anyone other than `client` is in the line. */
  othersThan(client: string | null): client is string {
    return client !== null && this.places.size > (this.places.has(client) ? 1 : 0);
  }

  /** Room kept for those ahead of `client` (roomAhead), given what each client and prefix holds. */
  ahead(client: string, held: ReadonlyMap<string, number>): number {
    return roomAhead(this.places, client, held, this.shares);
  }

  /**
   * A reply of `bytes` to `kind` was refused `client` for want of room: it joins the line, or keeps
   * its place, which now waits for the largest reply refused it. A smaller reply to something else
   * renews nothing (as refusedUnrun): else a client polling something else kept alive a place for
   * a reply it no longer asks for, and a due one (at the head) went to the back for a poll.
   */
  refused(client: string, bytes: number, kind: string): void {
    const place = this.places.get(client);
    if (place) {
      if (bytes > place.bytes) {
        place.bytes = bytes;
        place.kind = kind;
        this.most = Math.max(this.most, bytes);
      } else if (kind !== place.kind) {
        return;
      }
      this.renew(place);
      return;
    }
    if (this.places.size >= this.capacity) return;
    const prefixes = levelsOf(client, this.shares).slice(1);
    if (prefixes.some((p) => this.placesOf(p.key) >= p.share)) return;
    for (const p of prefixes) this.perPrefix.set(p.key, this.placesOf(p.key) + 1);
    this.places.set(client, { bytes, kind, seq: this.seq++, round: this.round, due: false });
    this.most = Math.max(this.most, bytes);
  }

  /**
   * A request of `kind` from `client` was refused unrun (refusedUnrun): a retry of what its place
   * waits for renews the place. Returns the room it asks the next round to make.
   */
  refusedUnrun(client: string | null, kind: string): number {
    const place = this.get(client);
    const { renew, roomBytes } = refusedUnrun(place, kind);
    if (renew) this.renew(place!);
    return roomBytes;
  }

  /** Renewed by a refusal: it lasts another round; refused after a round made room for it, to the back. */
  private renew(place: WsPlace): void {
    place.round = this.round;
    if (place.due) {
      place.due = false;
      place.seq = this.seq++;
    }
  }

  /** Whether `client` is due (a round made room for it) and `kind` is what its place waits for. */
  due(client: string | null, kind: string): boolean {
    const place = this.get(client);
    return place?.due === true && place.kind === kind;
  }

  /** Whether `client` is due and a reply of `bytes` to `kind` is what its place waits for. */
  dueFor(client: string | null, bytes: number, kind: string): boolean {
    const place = this.get(client);
    return place?.due === true && endsPlace(place, bytes, kind);
  }

  /** A reply of `bytes` to `kind` was booked for `client`: the end of its place if it waited for it. */
  booked(client: string | null, bytes: number, kind: string): void {
    const place = this.get(client);
    if (place && endsPlace(place, bytes, kind)) this.leave(client as string);
  }

  /** Takes a client's place out of the line. */
  leave(client: string): void {
    if (!this.places.delete(client)) return;
    for (const p of levelsOf(client, this.shares).slice(1)) {
      const n = this.placesOf(p.key) - 1;
      if (n <= 0) this.perPrefix.delete(p.key);
      else this.perPrefix.set(p.key, n);
    }
    this.most = 0;
    for (const place of this.places.values()) this.most = Math.max(this.most, place.bytes);
  }

  /**
   * A ping round has passed (and made room for the largest reply refused since the last): the
   * places not refused since the round before go (that round made room for them, and they did not
   * come back), and the head of those left is due.
   */
  endRound(held: ReadonlyMap<string, number>): void {
    this.round++;
    for (const [client, place] of this.places) if (place.round < this.round - 1) this.leave(client);
    let head: WsPlace | undefined;
    let headHeld = 0;
    for (const [client, place] of this.places) {
      place.due = false;
      const theirs = heldBy(client, held, this.shares);
      if (head === undefined || before(place, theirs, head, headHeld)) {
        head = place;
        headHeld = theirs;
      }
    }
    if (head) head.due = true;
  }
}
