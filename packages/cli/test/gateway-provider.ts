/**
 * One provider for the gateway's end-to-end test and benchmark, as a process of its own: a real
 * miner agent (its own owner key and dev chip, its provider API with TLS, its own offer and price).
 *
 *   node gateway-provider.js <nodeUrl> <ownerDevIndex> <chipIndex> <priceUnc> <dir> [--tamper]
 *
 * With --tamper it is a dishonest provider: the agent serves plain http behind a proxy in this
 * process that rewrites the duration in every receipt (so the chip's signature no longer matches),
 * and the offer names the proxy. Prints one JSON line {address, offerId, endpoint} once its chip is
 * registered, online and offered.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { addressFromPublicKey, ed25519PublicKey, encodeAddress, parseUnc } from '@unc/core';
import { DevSoftSigner, MinerAgent } from '@unc/miner';
import { createLogger, DEV_MODELS, devChipKey, devKey } from '@unc/node';
import {
  buildTransaction,
  createOfferAction,
  decodeSignedReceipt,
  encodeSignedReceipt,
  receiptToJson,
  sendTransaction,
  UncClient,
} from '@unc/sdk';

const [nodeUrl, ownerArg, chipArg, priceArg, dir] = process.argv.slice(2);
const tamper = process.argv.includes('--tamper');
const owner = devKey(Number(ownerArg));
const chipKey = devChipKey(Number(chipArg));
const price = parseUnc(priceArg!);
const terms = { pricePerHour: price, minHours: 1, maxHours: 24, noticeMs: 2_000n };
const client = new UncClient(nodeUrl!);

const signer = new DevSoftSigner(
  chipKey.seed,
  DEV_MODELS[Number(chipArg) % DEV_MODELS.length]!.modelId,
  chipKey.name,
);
const agent = new MinerAgent({
  nodeUrl: nodeUrl!,
  ownerSeed: owner.seed,
  chips: [signer],
  provider: {
    port: 0,
    modelDir: join(dir!, 'models'),
    stateDir: join(dir!, 'provider'),
    concurrency: 1,
    ...(tamper ? {} : { tls: { dir: join(dir!, 'tls') } }),
  },
  ...(tamper ? {} : { offer: terms }),
  logger: createLogger('miner', { level: 'warn' }),
});
await agent.start();
const address = encodeAddress(addressFromPublicKey(ed25519PublicKey(owner.seed)));

let endpoint = agent.providerUrl!;
if (tamper) {
  const upstream = new URL(agent.providerUrl!);
  const proxy = createServer((req, res) => {
    const fwd = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (up) => {
        const chunks: Buffer[] = [];
        up.on('data', (c) => chunks.push(c));
        up.on('end', () => {
          let body = Buffer.concat(chunks);
          if (req.method === 'POST' && req.url === '/v1/jobs' && up.statusCode === 200) {
            const job = JSON.parse(body.toString('utf8'));
            if (job.receipt?.hex) {
              const signed = decodeSignedReceipt(job.receipt.hex);
              signed.receipt.durationMs += 1n;
              job.receipt = { hex: encodeSignedReceipt(signed), json: receiptToJson(signed) };
              body = Buffer.from(JSON.stringify(job));
            }
          }
          const headers = { ...up.headers, 'content-length': String(body.length) };
          res.writeHead(up.statusCode ?? 502, headers).end(body);
        });
      },
    );
    fwd.on('error', () => res.writeHead(502).end());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

const chipId = Buffer.from(await signer.chipId()).toString('hex');
const deadline = Date.now() + 120_000;
let offerId: string | null = null;
let sent = false;
for (;;) {
  const offers = await client.getOffers({ provider: address }).catch(() => []);
  const mine = offers.find((o) => o.status === 'open' && o.endpoint === endpoint);
  if (mine?.chips.every((c) => c.available)) {
    offerId = mine.id;
    break;
  }
  if (tamper && !mine && !sent) {
    const chip = await client.call<{ online: boolean }>('unc_getChip', [chipId]).catch(() => null);
    if (chip?.online) {
      try {
        const stx = await buildTransaction(client, owner.seed, [
          createOfferAction({ ...terms, chipIds: [chipId], endpoint }),
        ]);
        await client.waitForTransaction(await sendTransaction(client, stx), 20_000);
        sent = true;
      } catch {
        // The agent's heartbeats share the owner's nonces: try again next round.
      }
    }
  }
  if (Date.now() > deadline) throw new Error(`provider ${address}: no offer after 120 s`);
  await new Promise((r) => setTimeout(r, 300));
}
console.log(JSON.stringify({ address, offerId, endpoint, chipId }));

const stop = () => {
  agent
    .stop()
    .then(() => process.exit(0))
    .catch(() => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
