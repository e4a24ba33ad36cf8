/**
 * Answers a renter does not read. Node keeps what a connection has not taken of an answer in the
 * provider's memory for as long as the connection stays open, and no timeout applies to an answer:
 * a renter that sent GET /v1/jobs/<id> of a 16 MiB job on many connections and read none held
 * ~21 MiB of the provider's memory per request of a few hundred bytes, for good (20 such requests:
 * 420 MiB). Now a renter's unread answers are counted (past its share its next requests get 429
 * ANSWERS_UNREAD) and an answer not taken within answerTimeoutMs has its connection closed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ed25519PublicKey, jobIdOf, jobRequestDigest, toHex } from '@unc/core';
import { silentLogger } from '@unc/node';
import {
  jobRequestHeaders,
  ProviderClient,
  type ProviderError,
  signJobRequest,
  signJobRequestAuth,
} from '@unc/sdk';
import { DevSoftSigner, ProviderServer } from '../src/index.js';
import { expandModel, loopModel } from './fixtures/attack-models.js';
import { tempDir } from './helpers.js';
import { InMemoryLeaseSource } from './provider-helpers.js';

const CHAIN = 'unc-test-unread';
/** 1 Mi floats: 4 MiB of output, an answer of ~5.6 MB, more than loopback's buffers take unread. */
const FLOATS = 1024 * 1024;
const ONE = Buffer.from(new Float32Array([1]).buffer).toString('base64');

/** Reads one HTTP answer (status and JSON body) from a connection that read nothing so far. */
function readAnswer(s: Socket): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
      if (buf.length < end + 4 + length) return;
      s.pause();
      resolve({
        status: Number(head.split(' ')[1]),
        body: JSON.parse(buf.subarray(end + 4, end + 4 + length).toString('utf8')),
      });
    });
    s.once('error', reject);
    s.resume();
  });
}

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
};

/** Forwards requests to the provider and lets a test rewrite answers to GETs: a dishonest provider. */
async function rewritingProxy(
  target: string,
  rewrite: (view: Record<string, unknown>) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === 'string' && k.startsWith('x-unc-')) headers[k] = v;
    const answer = await fetch(`${target}${req.url}`, {
      method: req.method!,
      headers,
      ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
    });
    const json = (await answer.json()) as Record<string, unknown>;
    if (req.method === 'GET' && answer.status === 200) rewrite(json);
    const text = JSON.stringify(json);
    res.writeHead(answer.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('answers a renter does not read', () => {
  const signer = new DevSoftSigner(new Uint8Array(randomBytes(32)), 'dev-h100', 'dev-chip-unread');
  const leases = new InMemoryLeaseSource();
  let dir: { path: string; remove(): Promise<void> };
  const providers: ProviderServer[] = [];
  const sockets: Socket[] = [];

  before(async () => {
    dir = await tempDir('unc-provider-unread-');
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    for (const p of providers) await p.stop();
    await dir?.remove();
  });

  async function start(
    name: string,
    answerTimeoutMs?: number,
    more: {
      maxUnreadAnswerBytesPerRenter?: number;
      jobTimeoutMs?: number;
      maxKeptOutputBytes?: number;
      maxJobsKept?: number;
      concurrency?: number;
    } = {},
  ) {
    const provider = new ProviderServer({
      chainId: CHAIN,
      signers: [signer],
      leases,
      modelDir: join(dir.path, name),
      concurrency: 1,
      maxBodyBytes: 4 * 1024 * 1024,
      maxUnreadAnswerBytesPerRenter: 1024 * 1024,
      ...(answerTimeoutMs === undefined ? {} : { answerTimeoutMs }),
      ...more,
      logger: silentLogger,
    });
    providers.push(provider);
    const url = await provider.start();
    return { provider, url };
  }

  async function renter(url: string) {
    const seed = new Uint8Array(randomBytes(32));
    const leaseId = toHex(randomBytes(32));
    const key = toHex(ed25519PublicKey(seed));
    leases.leases.set(leaseId, {
      id: leaseId,
      chipId: toHex(await signer.chipId()),
      renterPublicKey: key,
      status: 'active',
    });
    const client = new ProviderClient({
      endpoint: url,
      chainId: CHAIN,
      leaseId,
      renterSeed: seed,
      allowHttp: true,
    });
    const getText = (jobId: string) => {
      const path = `/v1/jobs/${jobId}`;
      const headers = signJobRequest(seed, {
        chainId: CHAIN,
        leaseId: Buffer.from(leaseId, 'hex'),
        method: 'GET',
        path,
        body: new Uint8Array(0),
      });
      return [
        `GET ${path} HTTP/1.1`,
        'host: provider',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n');
    };
    /** `count` GET /v1/jobs/<id> pipelined in one write, on a connection of its own that reads nothing. */
    const unreadGet = (jobId: string, count = 1) => {
      const u = new URL(url);
      const s = connect(Number(u.port), u.hostname);
      s.pause();
      sockets.push(s);
      s.write(Array.from({ length: count }, () => getText(jobId)).join(''));
      return s;
    };
    /**
     * A signed POST /v1/jobs (or, `batch`, a POST /v1/jobs/batch of that one job) written whole on
     * a connection of its own; returns its job (batch) id.
     */
    const rawJob = (model: string, wait = true, batch = false) => {
      const inputs = { x: { type: 'float32', dims: [1], data: ONE } };
      const body = Buffer.from(
        JSON.stringify(
          batch ? { model, jobs: [{ inputs }] } : { model, inputs, ...(wait ? {} : { wait: false }) },
        ),
      );
      const path = batch ? '/v1/jobs/batch' : '/v1/jobs';
      const signed = signJobRequestAuth(seed, {
        chainId: CHAIN,
        leaseId: Buffer.from(leaseId, 'hex'),
        method: 'POST',
        path,
        body,
      });
      const headers = jobRequestHeaders(signed, ed25519PublicKey(seed));
      const u = new URL(url);
      const s = connect(Number(u.port), u.hostname);
      sockets.push(s);
      s.write(
        [
          `POST ${path} HTTP/1.1`,
          'host: provider',
          'content-type: application/json',
          `content-length: ${body.length}`,
          ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
          '',
          '',
        ].join('\r\n'),
      );
      s.write(body);
      const jobId = toHex(
        jobIdOf(signed.request.leaseId, jobRequestDigest(signed.request), signed.request.nonce),
      );
      return { socket: s, jobId };
    };
    return { client, key, seed, leaseId, unreadGet, rawJob };
  }

  test('past its share of unread answers a renter is refused until it reads them; others are not', {
    timeout: 120_000,
  }, async () => {
    const { provider, url } = await start('models-share');
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { job } = await a.client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: ONE } });
    // Read answers are not counted (the count ends when the connection took the answer's last byte).
    await until(() => provider.unreadAnswerBytes(a.key) === 0);

    const s = a.unreadGet(job.jobId);
    await until(() => provider.unreadAnswerBytes(a.key) > 0);
    // More answers of a 16 MiB job each were written for every such request, without end.
    await assert.rejects(
      a.client.getJob(job.jobId),
      (e: ProviderError) => e.status === 429 && e.code === 'ANSWERS_UNREAD',
    );
    // Another renter is not held up by them.
    await assert.rejects(b.client.getJob(job.jobId), (e: ProviderError) => e.code === 'JOB_NOT_FOUND');

    // Once it reads its answer, its requests are served again.
    let got = 0;
    s.on('data', (c: Buffer) => {
      got += c.length;
    });
    s.resume();
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    assert.ok(got > 0);
    assert.equal((await a.client.getJob(job.jobId)).status, 'done');
  });

  test('an answer not taken within answerTimeoutMs has its connection closed', {
    timeout: 120_000,
  }, async () => {
    const { provider, url } = await start('models-timeout', 500);
    const a = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { job } = await a.client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: ONE } });
    const s = a.unreadGet(job.jobId);
    let got = 0;
    // The answer's first bytes: it was written. Then nothing more is read.
    await new Promise<void>((r) => {
      s.once('data', (c: Buffer) => {
        s.pause();
        got += c.length;
        r();
      });
      s.resume();
    });
    // Before, its connection stayed open and the answer in the provider's memory for good.
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    s.on('data', (c: Buffer) => {
      got += c.length;
    });
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.resume();
    await closed;
    // Less than the whole answer came: the connection was cut, not finished.
    assert.ok(got < (4 * FLOATS * 4) / 3, `got ${got} bytes`);
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    assert.equal((await a.client.getJob(job.jobId)).status, 'done');
  });
  test('GETs pipelined on one connection are held to the share, not each let past it', {
    timeout: 120_000,
  }, async () => {
    const { provider, url } = await start('models-pipelined');
    const a = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { job } = await a.client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: ONE } });
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    const answer = Buffer.byteLength(JSON.stringify((await a.client.getJob(job.jobId)) as unknown));
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    // Ten signed GETs in one write: parsed together, each checked before any was answered.
    a.unreadGet(job.jobId, 10);
    await until(() => provider.unreadAnswerBytes(a.key) > 0);
    // A request on another connection, answered after the ten were handled.
    await assert.rejects(a.client.getJob(job.jobId), (e: ProviderError) => e.code === 'ANSWERS_UNREAD');
    // Before, all ten were answered: 56 MB held against a share of 1 MiB.
    const held = provider.unreadAnswerBytes(a.key);
    assert.ok(held < 1024 * 1024 + 2 * answer, `held ${held} bytes, answers of ${answer}`);
  });

  test('answers pipelined behind one not read are released when the connection closes', {
    timeout: 120_000,
  }, async () => {
    const { provider, url } = await start('models-pipelined-close', undefined, {
      maxUnreadAnswerBytesPerRenter: 64 * 1024 * 1024,
    });
    const a = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { job } = await a.client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: ONE } });
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    const answer = Buffer.byteLength(JSON.stringify((await a.client.getJob(job.jobId)) as unknown));
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    const s = a.unreadGet(job.jobId, 3);
    await until(() => provider.unreadAnswerBytes(a.key) >= 3 * answer);
    s.destroy();
    // Before, the third answer (waiting behind the second, which waited behind the first) was
    // never released: counted for good, and a few such connections locked the renter out.
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    assert.equal((await a.client.getJob(job.jobId)).status, 'done');
  });

  test('an answer written after its renter gave up the connection is not counted', {
    timeout: 120_000,
  }, async () => {
    const { provider, url } = await start('models-gave-up', undefined, { jobTimeoutMs: 3_000 });
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { modelHash: loop } = await b.client.uploadModel(loopModel());
    // b's job holds the only job process until its time limit; a's job waits behind it.
    const blocked = b.client.runJob(loop, { x: { type: 'float32', dims: [1], data: ONE } }).then(
      () => 'done',
      (e: ProviderError) => e.code,
    );
    const { socket, jobId } = a.rawJob(modelHash);
    let seen = 'none';
    while (seen !== 'queued') {
      seen = await a.client.getJob(jobId).then(
        (v) => v.status,
        (e: ProviderError) => e.code,
      );
      if (seen === 'running' || seen === 'done') assert.fail(`a's job ran before b's ended: ${seen}`);
    }
    // a's client gives up (a timeout, a dropped network) while its job waits.
    socket.destroy();
    assert.equal(await blocked, 'JOB_TIMEOUT');
    let status = 'queued';
    while (status === 'queued' || status === 'running') status = (await a.client.getJob(jobId)).status;
    assert.equal(status, 'done');
    // Its answer was written to a closed connection: before, its bytes stayed counted for good
    // (neither 'finish' nor 'close' follows), and this renter got ANSWERS_UNREAD from then on.
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    assert.equal((await a.client.getJob(jobId)).status, 'done');
  });
  test('waited jobs whose answers would pass the share are answered with their id only; GET gives them', {
    timeout: 180_000,
  }, async () => {
    const share = 8 * 1024 * 1024;
    const { provider, url } = await start('models-waited', undefined, {
      maxUnreadAnswerBytesPerRenter: share,
      jobTimeoutMs: 5_000,
    });
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { modelHash: loop } = await b.client.uploadModel(loopModel());
    // b's job holds the only job process: a's jobs are all sent, nothing of a's unread, before any ends.
    const blocked = b.client.runJob(loop, { x: { type: 'float32', dims: [1], data: ONE } }).catch(() => null);
    while ((await b.client.health()).queue.running === 0) await new Promise((r) => setTimeout(r, 20));
    const sent = [0, 1, 2, 3].map(() => a.rawJob(modelHash));
    for (const { jobId } of sent)
      while ((await a.client.getJob(jobId).catch(() => null))?.status !== 'queued')
        await new Promise((r) => setTimeout(r, 20));
    await blocked;
    // All of a's jobs end (asked of health: a GET's answer would count while it is read); their
    // connections read nothing. A job's answer is written in the turn its queue slot is freed.
    for (;;) {
      const { queue } = await b.client.health();
      if (queue.running === 0 && queue.queued === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // Before, each answered whole: 4 answers of ~5.6 MB held against a share of 8 MiB.
    const held = provider.unreadAnswerBytes(a.key);
    assert.ok(held <= share, `held ${held} bytes against a share of ${share}`);
    const answers = await Promise.all(sent.map(({ socket }) => readAnswer(socket)));
    assert.deepEqual(answers.map((x) => x.status).sort(), [200, 202, 202, 202]);
    for (const [i, x] of answers.entries()) {
      if (x.status !== 202) continue;
      assert.deepEqual(Object.keys(x.body).sort(), ['jobId', 'leaseId', 'model', 'status']);
      assert.equal(x.body.jobId, sent[i]!.jobId);
      const got = await a.client.getJob(sent[i]!.jobId);
      assert.equal(got.status, 'done');
      assert.ok(got.receipt && got.outputs);
    }
  });

  test("a result answered with its id only is kept for its GET while others' jobs fill the store", {
    timeout: 180_000,
  }, async () => {
    // Room for two results of ~5.6 MB: before, the store dropped the oldest whatever they were.
    const { provider, url } = await start('models-kept', undefined, {
      maxUnreadAnswerBytesPerRenter: 8 * 1024 * 1024,
      maxKeptOutputBytes: 12 * 1024 * 1024,
    });
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const x = { x: { type: 'float32' as const, dims: [1], data: ONE } };
    const { job } = await a.client.runJob(modelHash, x);
    // One answer of ~5.6 MB left unread: a's next job is answered 202, its result kept for GET.
    const s = a.unreadGet(job.jobId);
    await until(() => provider.unreadAnswerBytes(a.key) > 0);
    const sent = a.rawJob(modelHash);
    const answer = await readAnswer(sent.socket);
    assert.equal(answer.status, 202);
    assert.ok(provider.unfetchedResultBytes(a.key) > 0);
    s.destroy();
    await until(() => provider.unreadAnswerBytes(a.key) === 0);
    // Another renter (an attacker as well) runs jobs of large outputs, more than the store holds.
    const { modelHash: big } = await b.client.uploadModel(expandModel(FLOATS));
    for (let i = 0; i < 3; i++) assert.equal((await b.client.runJob(big, x)).job.status, 'done');
    // Before, a's result was pushed out: JOB_NOT_FOUND for a job it paid for, no receipt.
    const got = await a.client.getJob(sent.jobId);
    assert.equal(got.status, 'done');
    assert.ok(got.receipt && got.outputs);
    // Once fetched it is kept no more: the store drops it in its turn.
    await until(() => provider.unfetchedResultBytes(a.key) === 0);
    await b.client.runJob(big, x);
    await b.client.runJob(big, x);
    await assert.rejects(a.client.getJob(sent.jobId), (e: ProviderError) => e.code === 'JOB_NOT_FOUND');
  });

  test("a result sent with wait: false is kept for its GET while others' jobs fill the store", {
    timeout: 180_000,
  }, async () => {
    // Room for two results of ~5.6 MB: before, a job sent with "wait": false had no keep at all.
    const { provider, url } = await start('models-no-wait', undefined, {
      maxUnreadAnswerBytesPerRenter: 8 * 1024 * 1024,
      maxKeptOutputBytes: 12 * 1024 * 1024,
    });
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const x = { x: { type: 'float32' as const, dims: [1], data: ONE } };
    const sent = a.rawJob(modelHash, false);
    assert.equal((await readAnswer(sent.socket)).status, 202);
    // Its end is awaited by health (a GET would take the result and end its keep).
    for (;;) {
      const { queue } = await a.client.health();
      if (queue.running === 0 && queue.queued === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // Another renter (an attacker as well) runs jobs of large outputs, more than the store holds.
    const { modelHash: big } = await b.client.uploadModel(expandModel(FLOATS));
    for (let i = 0; i < 3; i++) assert.equal((await b.client.runJob(big, x)).job.status, 'done');
    // Before, a's result was pushed out: JOB_NOT_FOUND for a job it paid for, no receipt.
    const got = await a.client.getJob(sent.jobId);
    assert.equal(got.status, 'done');
    assert.ok(got.receipt && got.outputs);
    // Once fetched it is kept no more.
    await until(() => provider.unfetchedResultBytes(a.key) === 0);
  });

  test('past the total of kept results, on a tie the renter that began keeping last loses its keep', {
    timeout: 180_000,
  }, async () => {
    // Half of the store (6 MiB) holds one kept result of ~5.6 MB, not two.
    const { provider, url } = await start('models-kept-tie', undefined, {
      maxUnreadAnswerBytesPerRenter: 8 * 1024 * 1024,
      maxKeptOutputBytes: 12 * 1024 * 1024,
    });
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    await b.client.uploadModel(expandModel(FLOATS));
    const idle = async () => {
      for (;;) {
        const { queue } = await a.client.health();
        if (queue.running === 0 && queue.queued === 0) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const first = a.rawJob(modelHash, false);
    assert.equal((await readAnswer(first.socket)).status, 202);
    await idle();
    const kept = provider.unfetchedResultBytes(a.key);
    assert.ok(kept > 0);
    const second = b.rawJob(modelHash, false);
    assert.equal((await readAnswer(second.socket)).status, 202);
    await idle();
    // Both keep as much (the same job's output): before, a, which was waiting first, lost its keep.
    assert.equal(provider.unfetchedResultBytes(a.key), kept);
    assert.equal(provider.unfetchedResultBytes(b.key), 0);
  });

  // A 202 named a job whose result had lost its keep at once (another renter's kept first, the
  // newcomer losing the tie) and was then trimmed: its GET answered JOB_NOT_FOUND.
  test('a result the store cannot keep for its GET is answered whole, not by an id GET cannot find', {
    timeout: 180_000,
  }, async () => {
    // Two jobs in the store, one of them kept for a GET; two job processes.
    const { provider, url } = await start('models-not-kept', undefined, {
      maxUnreadAnswerBytesPerRenter: 8 * 1024 * 1024,
      maxJobsKept: 2,
      concurrency: 2,
      jobTimeoutMs: 15_000,
    });
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    await b.client.uploadModel(expandModel(FLOATS));
    const { modelHash: loop } = await b.client.uploadModel(loopModel());
    const x = { x: { type: 'float32' as const, dims: [1], data: ONE } };
    const idle = async () => {
      for (;;) {
        const { queue } = await b.client.health();
        if (queue.running === 0 && queue.queued === 0) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const { job } = await a.client.runJob(modelHash, x);
    const s = a.unreadGet(job.jobId);
    await until(() => provider.unreadAnswerBytes(a.key) > 0);
    // b's result kept for its GET (the one keep the store has room for), then b's job that runs on.
    const kept = b.rawJob(modelHash, false);
    assert.equal((await readAnswer(kept.socket)).status, 202);
    await idle();
    assert.ok(provider.unfetchedResultBytes(b.key) > 0);
    const blocked = b.client.runJob(loop, x).catch(() => null);
    while ((await b.client.health()).queue.running === 0) await new Promise((r) => setTimeout(r, 20));
    // a's answer would pass its share; its result loses the keep to b's and the store is full.
    const sent = a.rawJob(modelHash);
    const answer = await readAnswer(sent.socket);
    assert.equal(answer.status, 200, 'answered whole');
    assert.equal(answer.body.status, 'done');
    assert.ok(answer.body.receipt && answer.body.outputs);
    s.destroy();
    await blocked;
  });

  test("a renter's results kept for their GET stay within its share", {
    timeout: 180_000,
  }, async () => {
    const share = 8 * 1024 * 1024;
    const { provider, url } = await start('models-kept-share', undefined, {
      maxUnreadAnswerBytesPerRenter: share,
    });
    const a = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { job } = await a.client.runJob(modelHash, { x: { type: 'float32', dims: [1], data: ONE } });
    const s = a.unreadGet(job.jobId);
    await until(() => provider.unreadAnswerBytes(a.key) > 0);
    const first = a.rawJob(modelHash);
    assert.equal((await readAnswer(first.socket)).status, 202);
    const one = provider.unfetchedResultBytes(a.key);
    assert.ok(one > 0);
    const second = a.rawJob(modelHash);
    assert.equal((await readAnswer(second.socket)).status, 202);
    // Two results of ~5.6 MB would pass its share of 8 MiB: one of them is kept for its GET.
    assert.equal(provider.unfetchedResultBytes(a.key), one);
    s.destroy();
    // Stopped, it keeps nothing for a GET that can no longer come (nor a timer holding it).
    providers.splice(providers.indexOf(provider), 1);
    await provider.stop();
    assert.equal(provider.unfetchedResultBytes(a.key), 0);
  });

  test('the client reads a job answered with its id only by GET, and checks it as any', {
    timeout: 120_000,
  }, async () => {
    const { provider, url } = await start('models-id-only', undefined, {
      maxUnreadAnswerBytesPerRenter: 8 * 1024 * 1024,
    });
    const a = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const x = { x: { type: 'float32' as const, dims: [1], data: ONE } };
    const { job } = await a.client.runJob(modelHash, x);
    // One answer of ~5.6 MB left unread: the next job's would pass the share, it is answered 202.
    const s = a.unreadGet(job.jobId);
    await until(() => provider.unreadAnswerBytes(a.key) > 0);
    // Counted on the real client: a provider that answered whole would pass the checks below too.
    const gets: string[] = [];
    const getJob = a.client.getJob.bind(a.client);
    a.client.getJob = (id: string) => {
      gets.push(id);
      return getJob(id);
    };
    const again = await a.client.runJob(modelHash, x);
    assert.deepEqual(gets, [again.job.jobId], 'its result read by one GET');
    assert.equal(again.job.status, 'done');
    assert.notEqual(again.job.jobId, job.jobId);
    assert.ok(again.job.outputs && again.job.receipt);
    s.destroy();
  });

  test('batches whose answers would pass the share are answered with their id only; GET gives them whole', {
    timeout: 180_000,
  }, async () => {
    const share = 8 * 1024 * 1024;
    const { provider, url } = await start('models-batches', undefined, {
      maxUnreadAnswerBytesPerRenter: share,
      jobTimeoutMs: 5_000,
    });
    const a = await renter(url);
    const b = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const { modelHash: loop } = await b.client.uploadModel(loopModel());
    // b's job holds the only job process: a's batches are all sent, nothing of a's unread, before any ends.
    const blocked = b.client.runJob(loop, { x: { type: 'float32', dims: [1], data: ONE } }).catch(() => null);
    while ((await b.client.health()).queue.running === 0) await new Promise((r) => setTimeout(r, 20));
    const sent = [0, 1, 2, 3].map(() => a.rawJob(modelHash, true, true));
    while ((await b.client.health()).queue.queued < 4) await new Promise((r) => setTimeout(r, 20));
    await blocked;
    // All of a's batches end (asked of health); their connections read nothing.
    for (;;) {
      const { queue } = await b.client.health();
      if (queue.running === 0 && queue.queued === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // Every answer has begun to come (its receipt is signed after the queue frees its place).
    await until(() => sent.every(({ socket }) => socket.readableLength > 0));
    // Before, each answered whole when it ended: 4 answers of ~5.6 MB held against a share of 8 MiB.
    const held = provider.unreadAnswerBytes(a.key);
    assert.ok(held <= share, `held ${held} bytes against a share of ${share}`);
    const answers = await Promise.all(sent.map(({ socket }) => readAnswer(socket)));
    assert.deepEqual(answers.map((x) => x.status).sort(), [200, 202, 202, 202]);
    for (const [i, x] of answers.entries()) {
      if (x.status !== 202) {
        assert.ok(x.body.receipt && x.body.jobs);
        continue;
      }
      assert.deepEqual(x.body, {
        batchId: sent[i]!.jobId,
        leaseId: a.leaseId,
        model: modelHash,
        status: 'done',
      });
      const got = await a.client.getBatch(sent[i]!.jobId);
      assert.equal(got.batchId, sent[i]!.jobId);
      assert.ok(got.receipt);
      assert.equal(got.jobs.length, 1);
      assert.equal(got.jobs[0]!.status, 'done');
      assert.ok(got.jobs[0]!.outputs && got.jobs[0]!.proof);
    }
    // Kept only until fetched; another renter's key cannot read them.
    await until(() => provider.unfetchedResultBytes(a.key) === 0);
    await assert.rejects(b.client.getBatch(sent[0]!.jobId), (e: ProviderError) => e.code === 'JOB_NOT_FOUND');
  });

  test('the client reads a batch answered with its id only by GET and checks every job against its receipt', {
    timeout: 120_000,
  }, async () => {
    const { provider, url } = await start('models-batch-id-only', undefined, {
      maxUnreadAnswerBytesPerRenter: 8 * 1024 * 1024,
    });
    const a = await renter(url);
    const { modelHash } = await a.client.uploadModel(expandModel(FLOATS));
    const x = { x: { type: 'float32' as const, dims: [1], data: ONE } };
    const { job } = await a.client.runJob(modelHash, x);
    // One answer of ~5.6 MB left unread: the batch's answer would pass the share, it is answered 202.
    const s = a.unreadGet(job.jobId);
    await until(() => provider.unreadAnswerBytes(a.key) > 0);
    const gets: string[] = [];
    const getBatch = a.client.getBatch.bind(a.client);
    a.client.getBatch = (id: string) => {
      gets.push(id);
      return getBatch(id);
    };
    const { batch, receipt, jobs } = await a.client.runBatch(modelHash, [x]);
    assert.deepEqual(gets, [batch.batchId], 'its result read by one GET');
    assert.equal(toHex(receipt.receipt.batchId), batch.batchId);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0]!.status, 'done');
    assert.equal(Buffer.from(jobs[0]!.outputs!.y!.data, 'base64').length, 4 * FLOATS);

    // A provider that changes what its GET gives is caught as for an answer given at once.
    const proxy = await rewritingProxy(url, (view) => {
      const jobs = view.jobs as { outputs: { y: { data: string } } }[] | undefined;
      if (!jobs) return;
      const y = Buffer.from(jobs[0]!.outputs.y.data, 'base64');
      y[0] = y[0]! ^ 1;
      jobs[0]!.outputs.y.data = y.toString('base64');
    });
    const c = new ProviderClient({
      endpoint: proxy.url,
      chainId: CHAIN,
      leaseId: a.leaseId,
      renterSeed: a.seed,
      allowHttp: true,
    });
    try {
      await until(() => provider.unreadAnswerBytes(a.key) > 0);
      await assert.rejects(c.runBatch(modelHash, [x]), /not the one the chip signed/);
    } finally {
      c.close();
      await proxy.close();
      s.destroy();
    }
  });
});
