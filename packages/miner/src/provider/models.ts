/**
 * Content-addressed model store: a model is saved under the hex of its content hash, written to a
 * temporary file and renamed, so a file under a hash name is always complete.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { contentHash, toHex } from '@unc/core';

export class ModelStore {
  /**
   * Models seen on disk. The store never deletes a model, so a model found once is there for good:
   * a job for it need not ask the file system again (a stat per job was a tenth of a tiny job's
   * cost). Bounded by what the disk holds; a file removed by hand fails its next load instead, and
   * its next upload looks at the disk itself (onDisk), so it is checked and stored again.
   */
  private readonly present = new Set<string>();

  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // Uploads cut short by a crash leave temporary files; nothing refers to them.
    for (const name of await readdir(this.dir))
      if (/^\.(upload\.)?[0-9a-f.]+\.tmp$/.test(name)) await rm(join(this.dir, name), { force: true });
  }

  pathOf(hashHex: string): string {
    if (!/^[0-9a-f]{64}$/.test(hashHex)) throw new Error(`invalid model hash "${hashHex}"`);
    return join(this.dir, `${hashHex}.onnx`);
  }

  async has(hashHex: string): Promise<boolean> {
    if (this.present.has(hashHex)) return true;
    try {
      const found = (await stat(this.pathOf(hashHex))).isFile();
      if (found) this.present.add(hashHex);
      return found;
    } catch {
      return false;
    }
  }

  /**
   * Whether the model's file is on disk now, asked of the file system (for uploads: the cache of
   * `has` would call a model removed by hand there, and its upload would be thrown away).
   */
  async onDisk(hashHex: string): Promise<boolean> {
    this.present.delete(hashHex);
    return this.has(hashHex);
  }

  /** Stores the bytes; `stored` is false when the same model was already there. */
  async put(model: Uint8Array): Promise<{ hash: string; stored: boolean }> {
    const hash = toHex(contentHash(model));
    if (await this.onDisk(hash)) return { hash, stored: false };
    const tmp = join(this.dir, `.${hash}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, model);
      await rename(tmp, this.pathOf(hash));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { hash, stored: true };
  }

  /** A fresh temporary file name in the store, for a model being received. */
  tempPath(): string {
    return join(this.dir, `.upload.${randomBytes(8).toString('hex')}.tmp`);
  }

  /**
   * Moves a received (and checked) temporary file under its hash; `stored` is false when the
   * same model was already there (the temporary file is removed then).
   */
  async commit(tmp: string, hashHex: string): Promise<{ stored: boolean }> {
    const dest = this.pathOf(hashHex);
    if (await this.onDisk(hashHex)) {
      await rm(tmp, { force: true });
      return { stored: false };
    }
    await rename(tmp, dest);
    return { stored: true };
  }

  async get(hashHex: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(this.pathOf(hashHex)));
  }
}
