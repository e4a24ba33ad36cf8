/**
 * Content-addressed model store: a model is saved under the hex of its content hash, written to a
 * temporary file, flushed and renamed, so a file under a hash name is always complete (one a power
 * loss tore under older versions is replaced by the next upload of the model).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { contentHash, toHex, utf8 } from '@unc/core';
import { fsyncDirectory } from '@unc/node';

/** A model that cannot be stored: the store (or the renter's share of it) is full of models in use. */
export class StoreFullError extends Error {}

/**
 * Holders kept per model (default). Past it the least recently active holder is dropped (its next
 * job gets MODEL_NOT_FOUND and it uploads the bytes again once, as after an eviction): refusing the
 * newcomer instead would let this many keys that hold a popular model's bytes lock every later
 * renter out of it. 63 lines of 65 bytes keep a holder record inside one 4 KiB disk block.
 */
export const MAX_HOLDERS_PER_MODEL = 63;

export interface ModelStoreOptions {
  /** Bytes of models kept, all renters together; the least recently used go first past it. */
  maxBytes?: number;
  /** Bytes of models one renter key holds (each model counted whole against each of its holders). */
  maxBytesPerRenter?: number;
  /** Renter keys kept per model (default MAX_HOLDERS_PER_MODEL); the least recently active go first. */
  maxHoldersPerModel?: number;
}

interface Entry {
  size: number;
  /**
   * The renter keys (hex) that uploaded these bytes, least recently active first: only they may run
   * the model. Empty: found on disk without a holder record (from before holders were kept, or put
   * there by hand), or stored by put without a renter; nobody runs it until someone uploads it.
   */
  holders: Set<string>;
}

const HEX64 = /^[0-9a-f]{64}$/;

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
   *
   * Each model keeps the renter keys that uploaded its bytes (its holders), in `<hash>.holders`
   * beside it: a model's hash is public once a renter posts a receipt, and any renter with a lease
   * here could otherwise run another renter's model by it (free use, extraction by queries, its
   * input names in error messages). A model counts whole against each holder's share; a holder's
   * own share evicting it takes it out of the holder set, and the bytes go when no holder is left;
   * past the total, a model goes whole.
   */
  private readonly entries = new Map<string, Entry>();
  private readonly pins = new Map<string, number>();
  private readonly ownerBytes = new Map<string, number>();
  /** Models booked by a commit whose file is not renamed in yet (onDisk must not forget them). */
  private readonly landing = new Set<string>();
  /**
   * Models whose file this process flushed before naming it, or hashed once already: a file is torn
   * only by a power loss, which ends the process, so one check per start is enough (hashed at every
   * upload of it again, a 256 MiB model cost a full read and hash per request of any holder).
   */
  private readonly verified = new Set<string>();
  /** Per model, the holder record write under way: writes of one record go one after another. */
  private readonly recordWrites = new Map<string, Promise<void>>();
  private total = 0;
  readonly maxBytes: number;
  readonly maxBytesPerRenter: number;
  readonly maxHoldersPerModel: number;

  constructor(
    readonly dir: string,
    opts: ModelStoreOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? 16 * 1024 ** 3;
    this.maxBytesPerRenter = opts.maxBytesPerRenter ?? Math.min(this.maxBytes, 4 * 1024 ** 3);
    this.maxHoldersPerModel = opts.maxHoldersPerModel ?? MAX_HOLDERS_PER_MODEL;
    if (!(Number.isSafeInteger(this.maxHoldersPerModel) && this.maxHoldersPerModel > 0))
      throw new Error(`maxHoldersPerModel must be a positive integer, not ${this.maxHoldersPerModel}`);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const found: [string, number, number][] = [];
    const records: string[] = [];
    for (const name of await readdir(this.dir)) {
      // Uploads and holder records cut short by a crash leave temporary files; nothing refers to them.
      if (/^\.(upload\.|holders\.)?[0-9a-f.]+\.tmp$/.test(name))
        await rm(join(this.dir, name), { force: true });
      const r = /^([0-9a-f]{64})\.holders$/.exec(name);
      if (r) records.push(r[1]!);
      const m = /^([0-9a-f]{64})\.onnx$/.exec(name);
      if (!m) continue;
      const st = await stat(join(this.dir, name)).catch(() => null);
      if (st?.isFile()) found.push([m[1]!, st.size, st.mtimeMs]);
    }
    // Models stored before a restart count against the quota, oldest first to go.
    found.sort((a, b) => a[2] - b[2]);
    for (const [hash, size] of found) this.remember(hash, { size, holders: await this.readHolders(hash) });
    // A record whose model is gone (a crash between removing the two) holds nobody.
    for (const hash of records)
      if (!this.entries.has(hash)) await rm(this.holdersPathOf(hash), { force: true });
  }

  /** Bytes of models kept now, all together or of one renter key. */
  bytes(renter?: string): number {
    return renter === undefined ? this.total : (this.ownerBytes.get(renter) ?? 0);
  }

  pathOf(hashHex: string): string {
    if (!HEX64.test(hashHex)) throw new Error(`invalid model hash "${hashHex}"`);
    return join(this.dir, `${hashHex}.onnx`);
  }

  /** The file of a model's holders: one renter key (hex) a line, least recently active first. */
  holdersPathOf(hashHex: string): string {
    if (!HEX64.test(hashHex)) throw new Error(`invalid model hash "${hashHex}"`);
    return join(this.dir, `${hashHex}.holders`);
  }

  /** A model's holders as recorded on disk (none without a record; malformed lines are skipped). */
  private async readHolders(hashHex: string): Promise<Set<string>> {
    const text = await readFile(this.holdersPathOf(hashHex), 'utf8').catch(() => '');
    const keys = text.split('\n').filter((k) => HEX64.test(k));
    // A record longer than the cap (written under a larger one) keeps its most recent holders.
    return new Set(keys.slice(Math.max(0, keys.length - this.maxHoldersPerModel)));
  }

  /**
   * Writes a model's holder record as the store has it now (removes it when the model is gone or
   * held by nobody): to a temporary file, flushed, renamed over it, and the folder flushed, so a
   * record is always whole, even after a power loss (renamed in before its bytes reached the disk,
   * it could come back empty: the model held by nobody, first to be evicted, its renters' shares
   * no longer counting it). Writes of one record are chained, each writing the state at its turn,
   * so the last one leaves the latest.
   */
  private persist(hashHex: string): Promise<void> {
    const write = async () => {
      const path = this.holdersPathOf(hashHex);
      const e = this.entries.get(hashHex);
      if (!e || e.holders.size === 0) {
        await rm(path, { force: true });
        fsyncDirectory(this.dir);
        return;
      }
      const tmp = join(this.dir, `.holders.${hashHex}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await writeFile(tmp, `${[...e.holders].join('\n')}\n`);
        await flush(tmp);
        await rename(tmp, path);
      } finally {
        await rm(tmp, { force: true });
      }
      fsyncDirectory(this.dir);
    };
    const next = (this.recordWrites.get(hashHex) ?? Promise.resolve()).then(write, write);
    this.recordWrites.set(hashHex, next);
    const done = () => {
      if (this.recordWrites.get(hashHex) === next) this.recordWrites.delete(hashHex);
    };
    next.then(done, done);
    return next;
  }

  private async persistAll(hashes: Iterable<string>): Promise<void> {
    for (const hash of new Set(hashes)) await this.persist(hash);
  }

  private remember(hash: string, entry: Entry): void {
    this.forget(hash);
    this.entries.set(hash, entry);
    this.total += entry.size;
    for (const h of entry.holders) this.ownerBytes.set(h, this.bytes(h) + entry.size);
  }

  private forget(hash: string): void {
    this.verified.delete(hash);
    const e = this.entries.get(hash);
    if (!e) return;
    this.entries.delete(hash);
    this.total -= e.size;
    for (const h of e.holders) this.uncount(h, e.size);
  }

  private uncount(renter: string, size: number): void {
    const left = this.bytes(renter) - size;
    if (left <= 0) this.ownerBytes.delete(renter);
    else this.ownerBytes.set(renter, left);
  }

  private dropHolder(hash: string, renter: string): void {
    const e = this.entries.get(hash);
    if (!e?.holders.delete(renter)) return;
    this.uncount(renter, e.size);
  }

  /** Marks a model just used (by `renter`, one of its holders): both go last in their eviction orders. */
  touch(hashHex: string, renter?: string): void {
    const e = this.entries.get(hashHex);
    if (!e) return;
    this.entries.delete(hashHex);
    this.entries.set(hashHex, e);
    if (renter !== undefined && e.holders.delete(renter)) e.holders.add(renter);
  }

  /** Whether the store knows the model now (no file system access). */
  known(hashHex: string): boolean {
    return this.entries.has(hashHex);
  }

  /** Whether `renter` uploaded the model's bytes and holds it now (no file system access). */
  holds(hashHex: string, renter: string): boolean {
    return this.entries.get(hashHex)?.holders.has(renter) ?? false;
  }

  /** A model's holders now, least recently active first. */
  holdersOf(hashHex: string): string[] {
    return [...(this.entries.get(hashHex)?.holders ?? [])];
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
      // A file put there by hand: it counts too, held by whoever its record (if any) names.
      const holders = await this.readHolders(hashHex);
      if (!this.entries.has(hashHex)) this.remember(hashHex, { size: st.size, holders });
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
    // A model whose commit has booked it but not yet renamed its file in is there for uploads.
    if (this.landing.has(hashHex)) return true;
    if (!there) this.forget(hashHex);
    else if (!this.entries.has(hashHex)) return this.has(hashHex);
    return there;
  }

  /**
   * Makes room for model `hash` of `size` bytes held by `renter` (null: no renter); `fresh`: its
   * bytes are new to the store (false: the renter joins the holders of a model already here).
   * Evicts the renter's own least recently used models past its share (the renter leaves their
   * holder sets; a model's bytes go when its last holder leaves), then, past the total, whole
   * models (every holder leaves), first those held by nobody, then the one whose lightest holder
   * holds the most; never a pinned one.
   * Synchronous, and followed at once by the booking, so uploads committed at once cannot both take
   * the same room. Throws StoreFullError, evicting nothing, when what is in the way is pinned.
   * Returns the models whose holders changed (their records are written again).
   */
  private makeRoom(hash: string, size: number, renter: string | null, fresh: boolean): Set<string> {
    if (size > this.maxBytes || (renter !== null && size > this.maxBytesPerRenter))
      throw new StoreFullError(`a model of ${size} bytes is larger than this store keeps`);
    /** Holders each model loses, and the models whose bytes go. */
    const dropped = new Map<string, Set<string>>();
    const gone = new Set<string>();
    let mine = renter === null ? 0 : this.bytes(renter);
    let total = this.total;
    const left = (h: string, e: Entry) => e.holders.size - (dropped.get(h)?.size ?? 0);
    const drop = (h: string, e: Entry, holder: string | null) => {
      if (holder !== null) {
        const d = dropped.get(h);
        if (d) d.add(holder);
        else dropped.set(h, new Set([holder]));
        if (holder === renter) mine -= e.size;
      }
      if (left(h, e) === 0 && !gone.has(h)) {
        gone.add(h);
        total -= e.size;
      }
    };
    if (renter !== null) {
      for (const [h, e] of this.entries) {
        if (mine + size <= this.maxBytesPerRenter) break;
        if (h !== hash && e.holders.has(renter) && !this.pins.has(h)) drop(h, e, renter);
      }
      if (mine + size > this.maxBytesPerRenter)
        throw new StoreFullError(
          "this renter's share of the model store is full of models in use; retry when their jobs are done",
        );
    }
    // Past the total only whole models go: taking one holder out of a model another still holds
    // frees no byte, and one upload took a heavy renter out of every model it shared and freed
    // nothing. Which model goes: the one whose lightest holder holds the most (among equals
    // the one with fewer holders, then the least recently used). For models held
    // by one renter that is the least recently used of the renter holding the most, so renters
    // that each stay inside their share cannot, uploading together, flush a smaller renter's
    // models out; a model shared with a light renter is as safe as that renter's own, so joining
    // the holders of another renter's (public) model does not expose it, and keys sharing their
    // own models among themselves still count them whole and go first. The uploader counts the
    // model it sends: uploading to push others out, it is the heavier for it. Models held by
    // nobody go before any: nobody can run them until someone uploads them again.
    const need = fresh ? size : 0;
    if (total + need > this.maxBytes) {
      // Models are grouped by the holders they have left (one group per holder set, least
      // recently used first in each), and each eviction weighs the groups, not the models: the
      // models of a group weigh the same, and taking one changes only its holders' weights.
      // Weighing every model for every eviction made one upload that had to evict a renter's
      // thousands of tiny models quadratic (8 000 of its 16 000 models of 16 bytes: 37 s with
      // the event loop held), and a renter may store as many as its share divided by a few bytes.
      // Each eviction now costs the holder sets left (one per renter when none shares a model).
      const held = new Map<string, number>();
      const groups = new Map<
        string,
        { holders: string[]; models: [string, Entry, number][]; next: number }
      >();
      let at = 0;
      for (const [h, e] of this.entries) {
        at++;
        if (gone.has(h) || h === hash) continue;
        const holders = [...e.holders].filter((x) => !dropped.get(h)?.has(x));
        for (const x of holders) held.set(x, (held.get(x) ?? 0) + e.size);
        if (this.pins.has(h)) continue;
        const key = [...holders].sort().join(',');
        const g = groups.get(key);
        if (g) g.models.push([h, e, at]);
        else groups.set(key, { holders, models: [[h, e, at]], next: 0 });
      }
      if (renter !== null) held.set(renter, (held.get(renter) ?? 0) + size);
      while (total + need > this.maxBytes) {
        let pick: { key: string; weight: number; holders: number; at: number } | undefined;
        for (const [key, g] of groups) {
          let weight = Number.POSITIVE_INFINITY;
          for (const x of g.holders) weight = Math.min(weight, held.get(x)!);
          const at = g.models[g.next]![2];
          if (
            pick === undefined ||
            weight > pick.weight ||
            (weight === pick.weight &&
              (g.holders.length < pick.holders || (g.holders.length === pick.holders && at < pick.at)))
          )
            pick = { key, weight, holders: g.holders.length, at };
        }
        if (pick === undefined) break;
        const g = groups.get(pick.key)!;
        const [h, e] = g.models[g.next++]!;
        if (g.next === g.models.length) groups.delete(pick.key);
        for (const x of g.holders) {
          held.set(x, held.get(x)! - e.size);
          drop(h, e, x);
        }
        if (g.holders.length === 0) drop(h, e, null);
      }
    }
    if (total + need > this.maxBytes)
      throw new StoreFullError('the model store is full of models in use; retry when their jobs are done');
    for (const [h, holders] of dropped) for (const x of holders) this.dropHolder(h, x);
    for (const h of gone) {
      this.forget(h);
      this.evicted.push(h);
    }
    return new Set([...dropped.keys(), ...gone]);
  }

  /** Files of evicted models not yet removed. */
  private readonly evicted: string[] = [];

  private async removeEvicted(): Promise<void> {
    while (this.evicted.length > 0) {
      const hash = this.evicted.shift()!;
      // A model evicted and stored again meanwhile keeps its file.
      if (!this.entries.has(hash) && !this.landing.has(hash)) await rm(this.pathOf(hash), { force: true });
    }
  }

  /**
   * Stores the bytes for `renter`; `stored` is false when that renter already held the model (see
   * commit).
   */
  async put(model: Uint8Array, renter: string | null = null): Promise<{ hash: string; stored: boolean }> {
    const hash = toHex(contentHash(model));
    const tmp = join(this.dir, `.${hash}.${randomBytes(6).toString('hex')}.tmp`);
    try {
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
   * counts against, and who becomes one of its holders), evicting least recently used models to
   * make room. `stored` is false only when `renter` already held the model: a renter joining the
   * holders of a model already here is told `stored: true` like the first uploader, so the answer
   * does not tell a renter that someone else uploaded the model (the temporary file is removed
   * then). StoreFullError when the room is held by models in use.
   */
  async commit(tmp: string, hashHex: string, renter: string | null = null): Promise<{ stored: boolean }> {
    const dest = this.pathOf(hashHex);
    let there = (await this.onDisk(hashHex)) ? this.entries.get(hashHex) : undefined;
    // A file under the name whose bytes are not the model's: renamed in before they reached the
    // disk (a power loss; older versions did not flush first). Joined, the upload was thrown away
    // and every job went on loading the torn file; its holders upload the model again like this one.
    if (there && !this.landing.has(hashHex) && !this.verified.has(hashHex)) {
      const whole = await holdsModel(dest, hashHex);
      // Another commit of the model may have landed or replaced it while the file was read.
      if (this.landing.has(hashHex) || this.entries.get(hashHex) !== there)
        return this.commit(tmp, hashHex, renter);
      if (whole) this.verified.add(hashHex);
      else {
        this.forget(hashHex);
        there = undefined;
      }
    }
    if (there) {
      const { stored, changed } = this.join(hashHex, there, renter);
      await rm(tmp, { force: true });
      await this.removeEvicted();
      await this.persistAll(changed);
      return { stored };
    }
    const { size } = await stat(tmp);
    // Booked now (synchronously with the eviction) so that commits at once share the room.
    const changed = this.makeRoom(hashHex, size, renter, true);
    this.remember(hashHex, { size, holders: new Set(renter === null ? [] : [renter]) });
    this.landing.add(hashHex);
    try {
      await this.removeEvicted();
      // Flushed before the name is the model's, and the name after: a power loss leaves the whole
      // model under its hash, or none.
      await flush(tmp);
      await rename(tmp, dest);
      fsyncDirectory(this.dir);
      this.verified.add(hashHex);
    } catch (err) {
      this.forget(hashHex);
      // The holders other models lost to make room are gone in memory: their records follow.
      await this.persistAll(changed).catch(() => undefined);
      throw err;
    } finally {
      this.landing.delete(hashHex);
    }
    // The record is written after the model: a crash between leaves a model held by nobody
    // (each renter uploads it once more), never a holder of a model it did not upload.
    await this.persistAll([...changed, hashHex]);
    return { stored: true };
  }

  /** Adds `renter` to the holders of a model already stored (the bytes it sent prove it has them). */
  private join(hashHex: string, e: Entry, renter: string | null): { stored: boolean; changed: Set<string> } {
    if (renter === null || e.holders.has(renter)) {
      this.touch(hashHex, renter ?? undefined);
      return { stored: false, changed: new Set() };
    }
    // The model counts against this renter's share too: its own least recently used make room.
    const changed = this.makeRoom(hashHex, e.size, renter, false);
    changed.add(hashHex);
    // Past the cap the least recently active holder leaves (it uploads once more if it comes back).
    while (e.holders.size >= this.maxHoldersPerModel)
      this.dropHolder(hashHex, e.holders.values().next().value!);
    e.holders.add(renter);
    this.ownerBytes.set(renter, this.bytes(renter) + e.size);
    this.touch(hashHex, renter);
    return { stored: true, changed };
  }

  async get(hashHex: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(this.pathOf(hashHex)));
  }
}

const CONTENT_TAG = utf8('UNC/content');

/**
 * Whether the file at `path` holds the model of hash `hashHex` (false too when unreadable): core's
 * contentHash over the file as it streams, never the whole file in memory at once (a readFile of
 * a model past 2 GiB threw, which read as torn, and the re-upload of any holder dropped the others).
 */
async function holdsModel(path: string, hashHex: string): Promise<boolean> {
  const h = createHash('sha256');
  h.update(Uint8Array.of(CONTENT_TAG.length));
  h.update(CONTENT_TAG);
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  } catch {
    return false;
  }
  return h.digest('hex') === hashHex;
}

async function flush(path: string): Promise<void> {
  // 'r+': Windows flushes only a handle open for writing.
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
