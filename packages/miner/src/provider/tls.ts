/**
 * TLS for the provider API (docs/operators.md, "TLS"). Providers usually run on bare IP addresses,
 * where no public CA issues certificates, so the agent makes its own: a P-256 key and a
 * self-signed certificate kept in its home, whose SHA-256 fingerprint the offer lists on chain.
 * Renters pin that fingerprint (@unc/sdk tls.ts).
 *
 * Files in the TLS directory (`<home>/tls` for `unc miner`):
 *   provider.key, provider.crt   what the API serves (the key 0600)
 *   next.key, next.crt           a rotation in progress: posted on chain beside the current one
 *   previous.key, previous.crt   the certificate a rotation replaced (kept until it is retired)
 * Rotation (`unc market offer rotate-tls`): post [current, next] on chain, then move next into
 * place; the running agent notices the new file and serves it to new connections (connections
 * already open keep theirs). Renters accept either while the chain lists both; `retire-tls`
 * then posts [current] alone.
 *
 * Mutual TLS is optional: a renter may present a self-signed certificate of its Ed25519 renter
 * key. The provider refuses a request whose client certificate is bound to another key than the
 * request's renter key; the request signature stays the authority for the lease.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  X509Certificate,
} from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, unwatchFile, watchFile } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { toHex } from '@unc/core';
import { fsyncDirectory, readPrivateKeyFile, removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { type ClientCertificate, certificateFingerprint } from '@unc/sdk';
import { takeLockFile } from '../lock-file.js';
import { randomSerial } from '../vendor/ca.js';
import { fromPem, toPem } from '../vendor/pem.js';
import { encodeName, issueCertificate, keyIdentifier, OID } from '../vendor/x509.js';

export interface TlsPair {
  keyPem: string;
  certPem: string;
  /** SHA-256 of the DER certificate, hex. */
  fingerprint: string;
}

const YEAR_MS = 365 * 24 * 3_600_000;

function selfSigned(key: KeyObject, commonName: string, usage: string, years: number): string {
  const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  const now = Math.floor(Date.now() / 1000) * 1000; // certificate times are whole seconds
  const name = { commonName };
  const der = issueCertificate(
    {
      serial: randomSerial(),
      issuer: encodeName(name),
      subject: name,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + years * YEAR_MS),
      subjectPublicKeyInfo: spki,
      authorityKeyId: keyIdentifier(spki),
      keyUsage: ['digitalSignature'],
      extendedKeyUsage: [usage],
    },
    key,
  );
  return toPem('CERTIFICATE', der);
}

/** A fresh P-256 key and a self-signed server certificate for it (valid 10 years). */
export function createProviderCertificate(commonName = 'UtilityNet provider'): TlsPair {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const certPem = selfSigned(privateKey, commonName, OID.serverAuth, 10);
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certPem,
    fingerprint: pemFingerprint(certPem),
  };
}

/** SHA-256 (hex) of the DER inside a PEM certificate. */
export function pemFingerprint(certPem: string): string {
  return certificateFingerprint(fromPem(certPem, 'CERTIFICATE'));
}

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function ed25519KeyFromSeed(seed: Uint8Array): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(seed)]),
    format: 'der',
    type: 'pkcs8',
  });
}

/**
 * The renter's client certificate for mutual TLS: self-signed by the renter's Ed25519 key, so
 * its public key is the renter key the lease names (made afresh; it carries no other claim).
 */
export function renterClientCertificate(renterSeed: Uint8Array): ClientCertificate {
  const key = ed25519KeyFromSeed(renterSeed);
  return {
    key: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert: selfSigned(key, 'UtilityNet renter', OID.clientAuth, 1),
  };
}

// ---- The TLS directory ----

export const TLS_FILES = {
  key: 'provider.key',
  cert: 'provider.crt',
  nextKey: 'next.key',
  nextCert: 'next.crt',
  previousKey: 'previous.key',
  previousCert: 'previous.crt',
} as const;

/**
 * Writes the pair whole (writeFileWhole), each file created under a fresh name (never opened through an
 * existing link or file), the key owner-only from its first byte, fsynced, renamed into place
 * (a link planted at its path is replaced, not written through) and the folder fsynced. Renamed in
 * unsynced, a power loss could leave an empty key or certificate where the agent reads it, whose
 * fingerprint the offer on chain no longer matches; and a rename that failed left the temporary
 * copy of the key behind.
 */
function writePair(dir: string, keyFile: string, certFile: string, pair: TlsPair): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileWhole(join(dir, keyFile), pair.keyPem, 0o600);
  writeFileWhole(join(dir, certFile), pair.certPem, 0o644);
}

function readPair(dir: string, keyFile: string, certFile: string): TlsPair | null {
  const keyPath = join(dir, keyFile);
  const certPath = join(dir, certFile);
  if (!existsSync(keyPath) || !existsSync(certPath)) return null;
  // Whoever else can read the key serves as this provider to the renters who pin its certificate.
  const keyPem = readPrivateKeyFile(keyPath);
  const certPem = readFileSync(certPath, 'utf8');
  return { keyPem, certPem, fingerprint: pemFingerprint(certPem) };
}

/** The certificate the API serves; created (with its key) on first use. */
export function ensureProviderCertificate(dir: string): TlsPair & { created: boolean } {
  // Where the agent (and `unc miner init`) loads the folder at start: the temporary files of a write
  // a kill interrupted, each a whole copy of a private key or a certificate, go (removeWholeLeftovers).
  for (const file of Object.values(TLS_FILES)) removeWholeLeftovers(join(dir, file));
  // Before a missing half is taken for a first start: a fresh pair here would be pinned by no offer.
  finishInterruptedPromotion(dir);
  const existing = readPair(dir, TLS_FILES.key, TLS_FILES.cert);
  if (existing) return { ...existing, created: false };
  const pair = createProviderCertificate();
  writePair(dir, TLS_FILES.key, TLS_FILES.cert, pair);
  return { ...pair, created: true };
}

export function readProviderCertificate(dir: string): TlsPair | null {
  return readPair(dir, TLS_FILES.key, TLS_FILES.cert);
}

/**
 * The next certificate of a rotation: made once, reused if a rotation is retried. With `fresh`
 * (a rotation after a key leak) a next key already on disk is not trusted: it lay beside the
 * leaked one, so a new one is made.
 */
export function prepareNextCertificate(dir: string, opts: { fresh?: boolean } = {}): TlsPair {
  const existing = opts.fresh ? null : readPair(dir, TLS_FILES.nextKey, TLS_FILES.nextCert);
  if (existing) return existing;
  const pair = createProviderCertificate();
  writePair(dir, TLS_FILES.nextKey, TLS_FILES.nextCert, pair);
  return pair;
}

/**
 * Throws unless `keyFile` is a readable private key of the public key `certFile` certifies: a pair
 * that does not match is never moved into place, where the API could not serve it at all.
 */
function assertPairMatches(dir: string, keyFile: string, certFile: string): void {
  let matches = false;
  try {
    const cert = new X509Certificate(readFileSync(join(dir, certFile)));
    matches = cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, keyFile))));
  } catch (err) {
    throw new Error(
      `${join(dir, keyFile)} and ${join(dir, certFile)} are not a readable key and certificate (${(err as Error).message}); the TLS files were left as they are`,
    );
  }
  if (!matches)
    throw new Error(
      `${join(dir, keyFile)} is not the key of ${join(dir, certFile)}; the TLS files were left as they are`,
    );
}

/** The lock file held while the folder's files are moved (promotion, its completion). */
const MOVE_LOCK = 'moving.lock';
/** How long a move waits for another process's move (which takes milliseconds) before it gives up. */
const MOVE_LOCK_WAIT_MS = 10_000;

/**
 * Runs `move` holding the folder's move lock: an agent starting (finishInterruptedPromotion) while
 * rotate-tls promoted took the half-moved folder for a cut promotion and finished it under it; the
 * promotion's next renames then moved the new certificate to previous.crt and failed, and the next
 * start made a fresh pair no offer pins. A lock left by a process that is gone is taken over.
 */
function underMoveLock<T>(dir: string, move: () => T): T {
  const path = join(dir, MOVE_LOCK);
  let busy: Error | null = null;
  const held = (pid: number) => {
    busy = new Error(`process ${pid} is moving the TLS files in ${dir} (${path}); try again`);
    return busy;
  };
  const errors = { held, takingOver: held, changing: () => new Error(`${path} kept changing`) };
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; ; waited += 20) {
    let release: () => void;
    try {
      release = takeLockFile(path, errors);
    } catch (err) {
      if (err !== busy || waited >= MOVE_LOCK_WAIT_MS) throw err;
      // Synchronous callers (the agent's start): a move holds the lock for milliseconds.
      Atomics.wait(sleep, 0, 0, 20);
      continue;
    }
    try {
      return move();
    } finally {
      release();
    }
  }
}

/** Puts the next certificate in place (the current one becomes `previous`); returns it. */
export function promoteNextCertificate(dir: string): TlsPair {
  return underMoveLock(dir, () => {
    const next = readPair(dir, TLS_FILES.nextKey, TLS_FILES.nextCert);
    if (!next) throw new Error(`no rotation in progress in ${dir} (no ${TLS_FILES.nextCert})`);
    assertPairMatches(dir, TLS_FILES.nextKey, TLS_FILES.nextCert);
    if (existsSync(join(dir, TLS_FILES.cert))) {
      renameSync(join(dir, TLS_FILES.key), join(dir, TLS_FILES.previousKey));
      renameSync(join(dir, TLS_FILES.cert), join(dir, TLS_FILES.previousCert));
    }
    // Key first: the agent reloads when the certificate file changes.
    renameSync(join(dir, TLS_FILES.nextKey), join(dir, TLS_FILES.key));
    renameSync(join(dir, TLS_FILES.nextCert), join(dir, TLS_FILES.cert));
    // The rotation's transaction is on chain already: a power loss must not bring the old pair back.
    fsyncDirectory(dir);
    return next;
  });
}

/**
 * Completes a promotion (promoteNextCertificate) that a kill cut between two of its renames, which
 * left the key or the certificate missing beside the next pair. It runs after the transaction
 * pinning the next certificate, so the next pair is the one to serve; taken for a first start, the
 * agent made a fresh pair that no offer pinned and every renter refused. Returns whether it did
 * anything. Not for the certificate watcher: it would race a promotion under way.
 */
export function finishInterruptedPromotion(dir: string): boolean {
  const at = (file: string) => join(dir, file);
  // Any entry counts, a dangling link too: taken for missing, a link was renamed over and its
  // half of the pair replaced by a guess.
  const present = (file: string) => lstatSync(at(file), { throwIfNoEntry: false }) !== undefined;
  const cut = () =>
    !(present(TLS_FILES.key) && present(TLS_FILES.cert)) &&
    present(TLS_FILES.nextCert) &&
    (present(TLS_FILES.key) || present(TLS_FILES.nextKey));
  // Looked at again under the lock: what looked cut may have been a promotion under way.
  if (!cut()) return false;
  return underMoveLock(dir, () => (cut() ? finishCut(dir) : false));
}

function finishCut(dir: string): boolean {
  const at = (file: string) => join(dir, file);
  const present = (file: string) => lstatSync(at(file), { throwIfNoEntry: false }) !== undefined;
  const key = present(TLS_FILES.key);
  const cert = present(TLS_FILES.cert);
  // The pair it would leave in place must be one: a key left beside a next certificate that a kill
  // mid-promotion never leaves (provider.key with next.key still there, say) or a next key that
  // does not parse is not finished into a pair no TLS server can load.
  assertPairMatches(dir, key ? TLS_FILES.key : TLS_FILES.nextKey, TLS_FILES.nextCert);
  // Cut after the current key was moved aside: its certificate follows it.
  if (cert) renameSync(at(TLS_FILES.cert), at(TLS_FILES.previousCert));
  if (!key) renameSync(at(TLS_FILES.nextKey), at(TLS_FILES.key));
  renameSync(at(TLS_FILES.nextCert), at(TLS_FILES.cert));
  fsyncDirectory(dir);
  return true;
}

/** The server side of the provider's TLS: what https.createServer gets, and the reload. */
export interface ProviderTlsOptions {
  /** The TLS directory (files above); the certificate is created there if missing. */
  dir: string;
  /** How often the certificate file is checked for a rotation (ms). */
  watchIntervalMs?: number;
  /**
   * How long a connection may take to finish its TLS handshake (ms, default 10 s): a client that
   * connects and says nothing holds a socket no longer (Node's own default is 120 s).
   */
  handshakeTimeoutMs?: number;
}

export function serverTlsOptions(pair: TlsPair) {
  return {
    key: pair.keyPem,
    cert: pair.certPem,
    minVersion: 'TLSv1.3' as const,
    ALPNProtocols: ['http/1.1'],
    // Mutual TLS is optional: a client certificate is asked for, not required, and no CA judges
    // it; clientCertificateRefusal binds it to the request's renter key.
    requestCert: true,
    rejectUnauthorized: false,
  };
}

/**
 * Calls `reload` with the new pair whenever the certificate or key file is replaced. Returns a
 * stop. Files that cannot be read or parsed (one half written, say) go to `onError`: a throw out
 * of the file watcher would end the agent's process, and its renters' jobs with it.
 */
export function watchProviderCertificate(
  dir: string,
  reload: (pair: TlsPair) => void,
  intervalMs = 500,
  onError: (err: Error) => void = () => {},
): () => void {
  const paths = [join(dir, TLS_FILES.cert), join(dir, TLS_FILES.key)];
  type Seen = { mtimeMs: number; ctimeMs: number; ino: number; size: number };
  // A rewrite within one tick of the file system's clock keeps mtime: the size and ctime tell too.
  const same = (a: Seen, b: Seen) =>
    a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.size === b.size;
  const listener = (cur: Seen, prev: Seen) => {
    if (same(cur, prev)) return;
    try {
      const pair = readProviderCertificate(dir);
      if (pair) reload(pair);
    } catch (err) {
      onError(err as Error);
    }
  };
  for (const path of paths) watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return () => {
    for (const path of paths) unwatchFile(path, listener);
  };
}

const boundKeys = new WeakMap<object, string | Error | null>();

function clientKeyOf(socket: TLSSocket): string | Error | null {
  if (boundKeys.has(socket)) return boundKeys.get(socket)!;
  let result: string | Error | null = null;
  const peer = socket.getPeerCertificate?.();
  if (peer?.raw) {
    try {
      const x = new X509Certificate(peer.raw);
      const key = x.publicKey;
      if (key.asymmetricKeyType !== 'ed25519' || !x.verify(key))
        result = new Error('a client certificate must be self-signed by the Ed25519 renter key');
      else
        result = toHex(new Uint8Array(Buffer.from(key.export({ format: 'jwk' }).x as string, 'base64url')));
    } catch (err) {
      result = new Error(`unreadable client certificate: ${(err as Error).message}`);
    }
  }
  boundKeys.set(socket, result);
  return result;
}

/**
 * Mutual TLS: null when the request may go on (no client certificate, or one bound to the
 * request's renter key), else why it is refused.
 */
export function clientCertificateRefusal(req: IncomingMessage): string | null {
  const socket = req.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return null;
  const bound = clientKeyOf(socket);
  if (bound === null) return null;
  if (bound instanceof Error) return bound.message;
  const renter = String(req.headers['x-unc-renter'] ?? '').toLowerCase();
  if (renter && renter !== bound)
    return `the client certificate is bound to key ${bound}, not to this request's renter key ${renter}`;
  return null;
}
