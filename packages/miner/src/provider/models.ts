/**
 * Content-addressed model store: a model is saved under the hex of its content hash, written to a
 * temporary file and renamed, so a file under a hash name is always complete.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { contentHash, toHex } from '@unc/core';

/** A model that cannot be stored: the store (or the renter's share of it) is full of models in use. */
export class StoreFullError extends Error {}

export interface ModelStoreOptions {
  /** Bytes of models kept, all renters together; the least recently used go first past it. */
  maxBytes?: number;
  /** Bytes of models one renter key stored; its own least recently used go first past it. */
  maxBytesPerRenter?: number;
}

interface Entry {
  size: number;
  /** The renter key that stored it (null: found on disk at start, or stored by put). */
  owner: string | null;
}

export class ModelStore {
  /**
   * Models on disk, least recently used first (a job or an upload of a model moves it last). Once
   * known, a job for a model need not ask the file system again (a stat per job was a tenth of a
   * tiny job's cost). A file removed by hand fails its next load instead, and its next upload
   * looks at the disk itself (onDisk), so it is checked and stored again.
   *
   * The store has a quota: without one a renter filled the disk with models (40 uploads of 1 MiB
   * padded to new hashes stayed for good), and a full disk failed every other request. Models are
   * content-addressed, so one evicted is uploaded again by whoever needs it; a model pinned by a
   * queued or running job is never evicted.
   */
  private readonly entries = new Map<string, Entry>();
  private readonly pins = new Map<string, number>();
  private readonly ownerBytes = new Map<string, number>();
  private total = 0;
  readonly maxBytes: number;
  readonly maxBytesPerRenter: number;

  constructor(
    readonly dir: string,
    opts: ModelStoreOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? 16 * 1024 ** 3;
    this.maxBytesPerRenter = opts.maxBytesPerRenter ?? Math.min(this.maxBytes, 4 * 1024 ** 3);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const found: [string, number, number][] = [];
    for (const name of await readdir(this.dir)) {
      // Uploads cut short by a crash leave temporary files; nothing refers to them.
      if (/^\.(upload\.)?[0-9a-f.]+\.tmp$/.test(name)) await rm(join(this.dir, name), { force: true });
      const m = /^([0-9a-f]{64})\.onnx$/.exec(name);
      if (!m) continue;
      const st = await stat(join(this.dir, name)).catch(() => null);
      if (st?.isFile()) found.push([m[1]!, st.size, st.mtimeMs]);
    }
    // Models stored before a restart count against the quota, oldest first to go.
    found.sort((a, b) => a[2] - b[2]);
    for (const [hash, size] of found) this.remember(hash, { size, owner: null });
  }

  /** Bytes of models kept now, all together or of one renter key. */
  bytes(renter?: string): number {
    return renter === undefined ? this.total : (this.ownerBytes.get(renter) ?? 0);
  }

  pathOf(hashHex: string): string {
    if (!/^[0-9a-f]{64}$/.test(hashHex)) throw new Error(`invalid model hash "${hashHex}"`);
    return join(this.dir, `${hashHex}.onnx`);
  }

  private remember(hash: string, entry: Entry): void {
    this.forget(hash);
    this.entries.set(hash, entry);
    this.total += entry.size;
    if (entry.owner !== null) this.ownerBytes.set(entry.owner, this.bytes(entry.owner) + entry.size);
  }

  private forget(hash: string): void {
    const e = this.entries.get(hash);
    if (!e) return;
    this.entries.delete(hash);
    this.total -= e.size;
    if (e.owner !== null) {
      const left = this.bytes(e.owner) - e.size;
      if (left <= 0) this.ownerBytes.delete(e.owner);
      else this.ownerBytes.set(e.owner, left);
    }
  }

  /** Marks a model just used: it goes last in the eviction order. */
  touch(hashHex: string): void {
    const e = this.entries.get(hashHex);
    if (!e) return;
    this.entries.delete(hashHex);
    this.entries.set(hashHex, e);
  }

  /** Whether the store knows the model now (no file system access). */
  known(hashHex: string): boolean {
    return this.entries.has(hashHex);
  }

  /** Keeps a model from eviction (a job queued or running on it) until the returned function is called. */
  pin(hashHex: string): () => void {
    this.pins.set(hashHex, (this.pins.get(hashHex) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.pins.get(hashHex) ?? 1) - 1;
      if (left <= 0) this.pins.delete(hashHex);
      else this.pins.set(hashHex, left);
    };
  }

  async has(hashHex: string): Promise<boolean> {
    if (this.entries.has(hashHex)) return true;
    try {
      const st = await stat(this.pathOf(hashHex));
      if (!st.isFile()) return false;
      // A file put there by hand: it counts too.
      if (!this.entries.has(hashHex)) this.remember(hashHex, { size: st.size, owner: null });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Whether the model's file is on disk now, asked of the file system (for uploads: the store's
   * memory would call a model removed by hand there, and its upload would be thrown away).
   */
  async onDisk(hashHex: string): Promise<boolean> {
    const there = await stat(this.pathOf(hashHex)).then(
      (st) => st.isFile(),
      () => false,
    );
    if (!there) this.forget(hashHex);
    else if (!this.entries.has(hashHex)) return this.has(hashHex);
    return there;
  }

  /**
   * Makes room for `size` bytes of a renter (null: no renter): evicts its own least recently used
   * models past its share, then, past the total, those of whoever holds the most, never a pinned
   * one. Synchronous, and
   * followed at once by the booking, so uploads committed at once cannot both take the same room.
   * Throws StoreFullError, evicting nothing, when what is in the way is pinned.
   */
  private makeRoom(size: number, renter: string | null): void {
    if (size > this.maxBytes || (renter !== null && size > this.maxBytesPerRenter))
      throw new StoreFullError(`a model of ${size} bytes is larger than this store keeps`);
    const victims = new Set<string>();
    let mine = renter === null ? 0 : this.bytes(renter);
    let total = this.total;
    const free = (hash: string, e: Entry) => {
      victims.add(hash);
      total -= e.size;
      if (e.owner === renter) mine -= e.size;
    };
    if (renter !== null) {
      for (const [hash, e] of this.entries) {
        if (mine + size <= this.maxBytesPerRenter) break;
        if (e.owner === renter && !this.pins.has(hash)) free(hash, e);
      }
      if (mine + size > this.maxBytesPerRenter)
        throw new StoreFullError(
          "this renter's share of the model store is full of models in use; retry when their jobs are done",
        );
    }
    // Past the total, the renter holding the most goes first (its least recently used model),
    // not the least recently used of all: renters that each stay inside their share could
    // otherwise, uploading together, flush every other renter's models out of the store.
    if (total + size > this.maxBytes) {
      const held = new Map<string | null, number>();
      const queues = new Map<string | null, [string, Entry][]>();
      for (const [hash, e] of this.entries) {
        held.set(e.owner, (held.get(e.owner) ?? 0) + (victims.has(hash) ? 0 : e.size));
        if (victims.has(hash) || this.pins.has(hash)) continue;
        const q = queues.get(e.owner);
        if (q) q.push([hash, e]);
        else queues.set(e.owner, [[hash, e]]);
      }
      while (total + size > this.maxBytes) {
        let pick: string | null | undefined;
        for (const [owner, q] of queues)
          if (q.length > 0 && (pick === undefined || held.get(owner)! > held.get(pick)!)) pick = owner;
        if (pick === undefined) break;
        const [hash, e] = queues.get(pick)!.shift()!;
        held.set(pick, held.get(pick)! - e.size);
        free(hash, e);
      }
    }
    if (total + size > this.maxBytes)
      throw new StoreFullError('the model store is full of models in use; retry when their jobs are done');
    for (const hash of victims) {
      this.forget(hash);
      this.evicted.push(hash);
    }
  }

  /** Files of evicted models not yet removed. */
  private readonly evicted: string[] = [];

  private async removeEvicted(): Promise<void> {
    while (this.evicted.length > 0) {
      const hash = this.evicted.shift()!;
      // A model evicted and stored again meanwhile keeps its file.
      if (!this.entries.has(hash)) await rm(this.pathOf(hash), { force: true });
    }
  }

  /** Stores the bytes; `stored` is false when the same model was already there. */
  async put(model: Uint8Array, renter: string | null = null): Promise<{ hash: string; stored: boolean }> {
    const hash = toHex(contentHash(model));
    const tmp = join(this.dir, `.${hash}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      if (await this.onDisk(hash)) {
        this.touch(hash);
        return { hash, stored: false };
      }
      await writeFile(tmp, model);
      return { hash, ...(await this.commit(tmp, hash, renter)) };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** A fresh temporary file name in the store, for a model being received. */
  tempPath(): string {
    return join(this.dir, `.upload.${randomBytes(8).toString('hex')}.tmp`);
  }

  /**
   * Moves a received (and checked) temporary file under its hash, for `renter` (whose share it
   * counts against), evicting least recently used models to make room; `stored` is false when the
   * same model was already there (the temporary file is removed then). StoreFullError when the
   * room is held by models in use.
   */
  async commit(tmp: string, hashHex: string, renter: string | null = null): Promise<{ stored: boolean }> {
    const dest = this.pathOf(hashHex);
    if (await this.onDisk(hashHex)) {
      await rm(tmp, { force: true });
      this.touch(hashHex);
      return { stored: false };
    }
    const { size } = await stat(tmp);
    // Booked now (synchronously with the eviction) so that commits at once share the room.
    this.makeRoom(size, renter);
    this.remember(hashHex, { size, owner: renter });
    try {
      await this.removeEvicted();
      await rename(tmp, dest);
    } catch (err) {
      this.forget(hashHex);
      throw err;
    }
    return { stored: true };
  }

  async get(hashHex: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(this.pathOf(hashHex)));
  }
}
