/**
 * A bounded map for caches of imported keys, in two generations: lookups look in both, inserts go
 * to the young one, and when that is full the old generation is dropped whole and the young one
 * takes its place. A hit in the old generation is copied to the young one, so keys in steady use
 * (validators, busy accounts, vendor CAs) stay. At most `limit` entries are held.
 *
 * Evicting one entry at a time from the front of a Map (FIFO) looks constant-time but is not in
 * V8: deleted entries stay in the table until it is rehashed and `keys().next()` walks over all of
 * them, so once a large cache is full every insert costs tens to hundreds of microseconds, more
 * than the signature check the cache is there to save, and anyone who can make a node check
 * signatures under fresh keys keeps it in that state.
 */
export class BoundedCache<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();
  private readonly generation: number;

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 2) throw new RangeError('cache limit must be at least 2');
    this.generation = Math.floor(limit / 2);
  }

  get(id: string): V | undefined {
    const young = this.young.get(id);
    if (young !== undefined) return young;
    const old = this.old.get(id);
    if (old !== undefined) this.set(id, old);
    return old;
  }

  set(id: string, value: V): void {
    if (this.young.size >= this.generation) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(id, value);
  }

  /** Entries held, counting a key present in both generations twice; never more than the limit. */
  get size(): number {
    return this.young.size + this.old.size;
  }
}
