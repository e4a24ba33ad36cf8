/**
 * The state is a flat map of byte keys to byte values. The core only ever sees it through
 * `StateReader` (what the block starts from) and `StateOverlay` (what the block writes), so the
 * same transition code runs against LevelDB in the node, a Map in tests and the simulator.
 */
import { bytesToLatin1 } from '../platform/node.js';

export interface StateReader {
  get(key: Uint8Array): Uint8Array | undefined;
  /**
   * `get` with `keyId(key)` already computed, for a reader keyed by it (a node's in-memory state):
   * an overlay's miss then costs no second id. An overlay uses it only where the reader's own class
   * defines it, so a subclass that overrides `get` alone is still read through its `get`.
   */
  getById?(id: string, key: Uint8Array): Uint8Array | undefined;
}

export interface StateWrite {
  key: Uint8Array;
  /** null deletes the key. */
  value: Uint8Array | null;
}

export function keyId(key: Uint8Array): string {
  return bytesToLatin1(key);
}

/** Buffered writes over a reader; `commit()` folds a child's writes into its parent. */
export class StateOverlay implements StateReader {
  private readonly pending = new Map<string, StateWrite>();
  reads = 0;
  writes = 0;

  constructor(private readonly base: StateReader) {}

  get(key: Uint8Array): Uint8Array | undefined {
    this.reads++;
    return this.lookup(keyId(key), key);
  }

  /**
   * `get` with the key's id already computed: a read through a transaction's overlay, the block's
   * and the in-memory state computed the same id three times. Counts reads as `get` does.
   */
  private lookup(id: string, key: Uint8Array): Uint8Array | undefined {
    const w = this.pending.get(id);
    if (w) return w.value ?? undefined;
    // Only the exact classes take the shortcut: a subclass may override `get` (a cache, a recorder
    // of reads for proofs), and skipping its `get` would read past it.
    const base = this.base;
    const proto = Object.getPrototypeOf(base);
    if (proto === StateOverlay.prototype) {
      const overlay = base as StateOverlay;
      overlay.reads++;
      return overlay.lookup(id, key);
    }
    if (proto === MemoryState.prototype) return (base as MemoryState).getById(id);
    if (base.getById !== undefined && Object.hasOwn(proto, 'getById')) return base.getById(id, key);
    return base.get(key);
  }

  set(key: Uint8Array, value: Uint8Array | null): void {
    this.writes++;
    this.pending.set(keyId(key), { key, value });
  }

  /** A nested overlay whose writes reach this one only if `commit` is called (tx atomicity). */
  child(): StateOverlay {
    return new StateOverlay(this);
  }

  commit(): void {
    const base = this.base;
    if (!(base instanceof StateOverlay)) throw new Error('commit() is only for child overlays');
    if (Object.getPrototypeOf(base) === StateOverlay.prototype) {
      // The exact class (as in `lookup`, a subclass's `set` is not skipped): the writes move over
      // under the ids they were stored by, rather than each key's id built again (a transaction's
      // two or three writes, for every transaction of a block).
      for (const [id, w] of this.pending) {
        base.writes++;
        base.pending.set(id, w);
      }
    } else for (const w of this.pending.values()) base.set(w.key, w.value);
    base.reads += this.reads;
    this.pending.clear();
  }

  /** The writes of this overlay, in a deterministic order (sorted by key). */
  changes(): StateWrite[] {
    return [...this.pending.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, w]) => w);
  }
}

/** A plain in-memory state, for genesis construction and tests. */
export class MemoryState implements StateReader {
  readonly map = new Map<string, StateWrite>();
  get(key: Uint8Array): Uint8Array | undefined {
    return this.getById(keyId(key));
  }
  /** `get` by keyId(key). */
  getById(id: string): Uint8Array | undefined {
    return this.map.get(id)?.value ?? undefined;
  }
  apply(changes: Iterable<StateWrite>): void {
    for (const c of changes) {
      if (c.value === null) this.map.delete(keyId(c.key));
      else this.map.set(keyId(c.key), c);
    }
  }
}
