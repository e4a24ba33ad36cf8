/**
 * Options used as a timer's delay. Node runs a timer of more than 2^31 - 1 ms (about 24.8 days)
 * after 1 ms: an operator who set answerTimeoutMs to a month to be lenient had every answer's
 * connection closed and every result kept for its GET dropped at once. Such values are refused
 * when the provider is built, with the option and the limit named.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@unc/node';
import { DevSoftSigner, type ProviderOptions, ProviderServer } from '../src/index.js';
import { checkUploadPace, DEFAULT_UPLOAD_PACE } from '../src/provider/http.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource } from './provider-helpers.js';

const LIMIT = 2 ** 31 - 1;

describe('provider options used as timer delays', () => {
  let dir: { path: string; remove(): Promise<void> };
  before(async () => {
    dir = await tempDir('unc-provider-timers-');
  });
  after(async () => {
    await dir?.remove();
  });

  const build = (more: Partial<ProviderOptions>) =>
    new ProviderServer({
      chainId: 'unc-test-timers',
      signers: [new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-timers')],
      leases: new InMemoryLeaseSource(),
      modelDir: join(dir.path, 'models'),
      logger: silentLogger,
      ...more,
    });

  test('a delay past the longest a timer keeps is refused, naming the option and the limit', () => {
    for (const [name, more] of [
      ['answerTimeoutMs', { answerTimeoutMs: LIMIT + 1 }],
      ['answerTimeoutMs', { answerTimeoutMs: 30 * 24 * 3600 * 1000 }],
      ['jobTimeoutMs', { jobTimeoutMs: LIMIT + 1 }],
      ['tls.handshakeTimeoutMs', { tls: { dir: join(dir.path, 'tls'), handshakeTimeoutMs: LIMIT + 1 } }],
    ] as const) {
      assert.throws(
        () => build(more),
        (e: Error) => e.message.includes(name) && e.message.includes(String(LIMIT)),
        name,
      );
    }
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      assert.throws(() => build({ answerTimeoutMs: bad }), /answerTimeoutMs/);
    // Refused before anything was built: not even the directory of the used nonces was made.
    assert.equal(existsSync(join(dir.path, 'models')), false);
  });

  test('delays up to the limit are taken', () => {
    build({ answerTimeoutMs: LIMIT, jobTimeoutMs: LIMIT });
    build({});
  });

  test("the upload pace's grace and idle time are held to the limit too", () => {
    for (const k of ['graceMs', 'idleMs'] as const) {
      assert.throws(
        () => checkUploadPace({ ...DEFAULT_UPLOAD_PACE, [k]: LIMIT + 1 }),
        (e: Error) => e.message.includes(k) && e.message.includes(String(LIMIT)),
      );
      checkUploadPace({ ...DEFAULT_UPLOAD_PACE, [k]: LIMIT });
    }
  });
});
