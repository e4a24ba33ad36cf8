/**
 * `unc job`: the renter's side of a lease (PROTOCOL.md §8). Jobs go to the provider endpoint the
 * lease names, signed by the renter key; every result's receipt is checked against the chip's
 * record on the chain before it is printed.
 */

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { type Chip, ed25519PublicKey, toHex, UncError } from '@unc/core';
import { renterClientCertificate } from '@unc/miner';
import {
  type ChipJson,
  decodeSignedReceipt,
  encodeSignedJobRequest,
  type JobResult,
  LightClient,
  ProviderClient,
  RpcClientError,
  receiptToJson,
  TENSOR_TYPES,
  type TensorJson,
  type UncClient,
  verifyReceiptOffline,
  walkBoundaries,
} from '@unc/sdk';
import { Command } from 'commander';
import { type Context, ctxOf, examples } from '../context.js';
import { resolveId } from '../ids.js';
import { leaseEndpoint, leasePin } from '../lease-pins.js';
import { DEFAULT_MAX_AGE_S, freshnessOf, MAX_AGE_HELP, proveOnly, trustAnchorOf } from './query.js';

interface LeaseView {
  id: string;
  chipId: string;
  renterPublicKey: string;
  endpoint: string;
  tlsFingerprints?: string[];
  status: string;
  closingReason?: string | null;
  closedReason?: string | null;
}

function readFileArg(path: string, what: string): Buffer {
  if (!existsSync(path)) throw new UncError('NO_FILE', `${what} ${path} does not exist`);
  return readFileSync(path);
}

const WRITERS: Partial<Record<keyof typeof TENSOR_TYPES, (b: Buffer, v: number, i: number) => void>> = {
  float32: (b, v, i) => b.writeFloatLE(v, i * 4),
  float64: (b, v, i) => b.writeDoubleLE(v, i * 8),
  int32: (b, v, i) => b.writeInt32LE(v, i * 4),
  int64: (b, v, i) => b.writeBigInt64LE(BigInt(v), i * 8),
  uint8: (b, v, i) => b.writeUInt8(v, i),
};

/**
 * Reads an input file: {name: {type, dims, data (base64)}}, or with `values` (a flat list of
 * numbers) instead of `data` for float32, float64, int32, int64 and uint8 tensors.
 */
export function readInputs(path: string): Record<string, TensorJson> {
  let json: unknown;
  try {
    json = JSON.parse(readFileArg(path, 'input file').toString('utf8'));
  } catch (err) {
    if (err instanceof UncError) throw err;
    throw new UncError('BAD_INPUT', `input file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new UncError(
      'BAD_INPUT',
      `input file ${path} must be an object {name: {type, dims, data | values}}`,
    );
  const out: Record<string, TensorJson> = {};
  for (const [name, t] of Object.entries(json as Record<string, Record<string, unknown>>)) {
    if (t && Array.isArray(t.values) && t.data === undefined) {
      const write = WRITERS[t.type as keyof typeof TENSOR_TYPES];
      if (!write)
        throw new UncError(
          'BAD_INPUT',
          `tensor "${name}": "values" works for ${Object.keys(WRITERS).join(', ')}`,
        );
      const values = t.values as unknown[];
      if (values.some((v) => typeof v !== 'number'))
        throw new UncError('BAD_INPUT', `tensor "${name}": "values" must be numbers`);
      const b = Buffer.alloc(values.length * TENSOR_TYPES[t.type as keyof typeof TENSOR_TYPES]);
      values.forEach((v, i) => write(b, v as number, i));
      out[name] = {
        type: t.type as TensorJson['type'],
        dims: t.dims as number[],
        data: b.toString('base64'),
      };
    } else {
      out[name] = t as unknown as TensorJson;
    }
  }
  return out;
}

/**
 * With `--prove`: the light client that reads the lease and the chip key (verifyLease, verifyChip)
 * instead of taking the node's word; built once per command from the same trust anchors as
 * `unc query account --prove`.
 */
export interface Prover {
  lc: LightClient;
  client: Parameters<LightClient['verifyLease']>[0] & Parameters<LightClient['verifyChip']>[0];
  /** `--max-age`: a lease or chip read at an older block is refused (STALE), not used. */
  maxAge?: string;
}

async function proverFor(ctx: Context, opts: ProveOpts, client: UncClient): Promise<Prover | null> {
  if (!opts.prove) return null;
  const anchor = await trustAnchorOf(ctx.home, opts, () => client.status().then((s) => s.chainId));
  return { lc: new LightClient(client, anchor), client, ...(opts.maxAge ? { maxAge: opts.maxAge } : {}) };
}

const progress = (through: bigint) =>
  process.stderr.write(`validator sets verified through block ${through}; going on\n`);

/** The lease, proven: every field of the view (endpoint and TLS fingerprints: its offer's) checked. */
export async function provenLease(p: Prover, id: string): Promise<LeaseView> {
  const r = await walkBoundaries(() => p.lc.verifyLease(p.client, id, freshnessOf(p)), progress);
  if (r.lease === null) throw new UncError('NO_LEASE', `the chain knows no lease ${id} (proven absent)`);
  return { ...r.json, endpoint: r.endpoint, tlsFingerprints: r.tlsFingerprints, status: r.status };
}

/** The chip record, proven: the key a receipt is checked against is the chain's, not the node's word. */
async function provenChip(p: Prover, chipId: string): Promise<Chip> {
  const r = await walkBoundaries(() => p.lc.verifyChip(p.client, chipId, freshnessOf(p)), progress);
  if (r.chip === null) throw new UncError('NO_CHIP', `the chain knows no chip ${chipId} (proven absent)`);
  return r.chip;
}

async function getLease(client: UncClient, id: string): Promise<LeaseView | null> {
  try {
    return await client.call<LeaseView>('unc_getLease', [id]);
  } catch (err) {
    if (err instanceof RpcClientError && err.reason === 'NOT_FOUND')
      throw new UncError('NO_LEASE', `the chain knows no lease ${id}`);
    // A node without the lease RPC: the endpoint must then be given.
    if (err instanceof RpcClientError && err.rpcCode === -32601) return null;
    throw err;
  }
}

type ProveOpts = { prove?: boolean; genesis?: string; trustedCheckpoint?: string; maxAge?: string };

interface RunOpts extends ProveOpts {
  lease: string;
  from: string;
  endpoint?: string;
  receiptOut?: string;
  requestOut?: string;
  passwordFile?: string;
  clientCert?: boolean;
}

/**
 * Runs a job; whatever happens, the signed job request is written where asked, so a request the
 * provider never answered can be disputed on chain (`unc market dispute <file>`).
 */
async function withRequestOut<T>(provider: ProviderClient, out: string | undefined, run: () => Promise<T>) {
  try {
    return await run();
  } catch (err) {
    if (out && provider.lastJobRequest) {
      const msg = `${(err as Error).message} (the signed request is in ${out}: \`unc market dispute ${out} --reason …\` records it on chain)`;
      throw err instanceof UncError ? new UncError(err.code, msg) : new Error(msg);
    }
    throw err;
  } finally {
    if (out && provider.lastJobRequest)
      writeFileSync(out, `${encodeSignedJobRequest(provider.lastJobRequest)}\n`);
  }
}

/** Connects to the lease's provider as its renter. */
async function providerFor(
  ctx: Context,
  opts: RunOpts,
): Promise<{
  provider: ProviderClient;
  client: UncClient;
  chainId: string;
  prover: Prover | null;
  /** The leased chip (proven with `--prove`), when the node knows the lease. */
  leaseChipId: string | undefined;
}> {
  const leaseId = await resolveId(ctx, 'lease', opts.lease);
  const client = ctx.client();
  const prover = await proverFor(ctx, opts, client);
  const readLease = (id: string) => (prover ? provenLease(prover, id) : getLease(client, id));
  const status = await client.status();
  // Plain http only on a dev chain (one that accepts software chips): elsewhere the renter's
  // inputs would cross the network in the clear. Refused before any connection is made.
  const devChain = (await client.getParams()).devChain === true;
  const refuseHttp = (url: string) => {
    if (/^http:/i.test(url) && !devChain)
      throw new UncError(
        'INSECURE_ENDPOINT',
        `refusing the plain http:// provider endpoint ${url} on chain ${status.chainId}, which is not a dev chain: providers serve https:// with a certificate pinned on chain`,
      );
  };
  if (opts.endpoint) refuseHttp(opts.endpoint);
  const lease = await readLease(leaseId);
  const endpoint = leaseEndpoint({
    leaseId,
    ...(opts.endpoint ? { given: opts.endpoint } : {}),
    ...(lease ? { reported: lease.endpoint } : {}),
    pin: leasePin(ctx.home, leaseId, status.chainId),
    node: ctx.nodeUrl,
  });
  if (!endpoint)
    throw new UncError('NO_ENDPOINT', 'the node does not serve unc_getLease; pass --endpoint <provider url>');
  refuseHttp(endpoint);
  // A closing lease is still served through its notice period.
  if (lease && (lease.status === 'closed' || lease.status === 'ended'))
    throw new UncError(
      'LEASE_NOT_ACTIVE',
      `lease ${leaseId} is ${lease.status}${lease.closedReason || lease.closingReason ? ` (${lease.closedReason || lease.closingReason})` : ''}`,
    );
  const seed = await ctx.unlockKey(opts.from, status.chainId, opts);
  if (lease && lease.renterPublicKey.toLowerCase() !== toHex(ed25519PublicKey(seed)))
    throw new UncError('NOT_RENTER', `key "${opts.from}" is not the renter of lease ${leaseId}`);
  return {
    provider: new ProviderClient({
      endpoint,
      chainId: status.chainId,
      leaseId,
      renterSeed: seed,
      allowHttp: devChain,
      // The offer's certificate fingerprints; read again from the chain if the endpoint presents
      // another (the provider may have rotated its certificate since).
      tlsFingerprints: lease?.tlsFingerprints ?? [],
      refreshTlsFingerprints: async () => (await readLease(leaseId))?.tlsFingerprints ?? [],
      ...(opts.clientCert ? { clientCertificate: renterClientCertificate(seed) } : {}),
    }),
    client,
    chainId: status.chainId,
    prover,
    leaseChipId: lease?.chipId,
  };
}

/**
 * The receipt must be signed by the leased chip (the chain refuses any other for the lease,
 * RECEIPT_WRONG_CHIP): checked against the key of whatever chip it names, a receipt of the
 * provider's cheaper chip passed as "verified", with `--prove` as "proven on chain" too.
 */
export function checkReceiptChip(leaseChipId: string | undefined, receiptChipId: Uint8Array): void {
  if (leaseChipId !== undefined && leaseChipId.toLowerCase() !== toHex(receiptChipId))
    throw new UncError(
      'RECEIPT_WRONG_CHIP',
      `the receipt is signed by chip ${toHex(receiptChipId)}, not the leased chip ${leaseChipId}`,
    );
}

/**
 * `unc job verify --prove`: the receipt's lease proven (NO_LEASE when the chain proves it absent:
 * the chain takes no receipt for it), and the receipt signed by that lease's chip
 * (checkReceiptChip). The chip key alone proves only that some chip signed: a provider's receipt
 * signed by its other, cheaper chip passed for a job on the leased one.
 */
export async function checkReceiptLease(
  p: Prover,
  receipt: { leaseId: Uint8Array; chipId: Uint8Array },
): Promise<LeaseView> {
  const lease = await provenLease(p, toHex(receipt.leaseId));
  checkReceiptChip(lease.chipId, receipt.chipId);
  return lease;
}

/** Checks the receipt against the leased chip's record on the chain and writes it where asked. */
async function finish(
  client: UncClient,
  chainId: string,
  result: JobResult,
  receiptOut: string | undefined,
  prover: Prover | null,
  leaseChipId: string | undefined,
) {
  const hex = result.job.receipt!.hex;
  checkReceiptChip(leaseChipId, result.receipt.receipt.chipId);
  const chipId = toHex(result.receipt.receipt.chipId);
  const chip = prover
    ? await provenChip(prover, chipId)
    : await client.call<ChipJson>('unc_getChip', [chipId]);
  verifyReceiptOffline(hex, chip, chainId);
  if (receiptOut) writeFileSync(receiptOut, `${hex}\n`);
  return { chip };
}

function tensorLine(name: string, t: TensorJson): string {
  const b = Buffer.from(t.data, 'base64');
  const n = Math.min(8, b.length / TENSOR_TYPES[t.type]);
  const first =
    t.type === 'float32'
      ? Array.from({ length: n }, (_, i) => Number(b.readFloatLE(i * 4).toPrecision(6)))
      : t.type === 'float64'
        ? Array.from({ length: n }, (_, i) => b.readDoubleLE(i * 8))
        : null;
  return `  ${name}: ${t.type}[${t.dims.join('×')}]${first ? ` ${first.join(', ')}${b.length / TENSOR_TYPES[t.type] > n ? ', …' : ''}` : ''}`;
}

export function jobCommand(): Command {
  const job = new Command('job').description(
    'run jobs on a leased chip and check their chip-signed receipts',
  );

  const common = (c: Command) =>
    proveOnly(c)
      .requiredOption('--lease <id>', 'the lease (its id or a unique prefix)')
      .requiredOption('--from <key>', "keyring key of the lease's renter")
      .option('--endpoint <url>', "provider URL (default: the lease's endpoint on chain)")
      .option('--receipt-out <file>', 'write the signed receipt (hex) here')
      .option('--client-cert', 'present a TLS client certificate of the renter key (mutual TLS)')
      .option(
        '--request-out <file>',
        'write the signed job request (hex) here: the proof `unc market dispute` needs if no answer comes',
      )
      .option('--password-file <file>', "the renter key's password")
      .option(
        '--prove',
        "read the lease (status, endpoint, TLS pins) and the chip's key through the light client: Merkle proofs against validator-signed headers, not the node's word",
      )
      .option('--genesis <file>', "with --prove: the chain's genesis file to trust (default: the home's)")
      .option('--trusted-checkpoint <height:hash>', "with --prove: trust this epoch's last block instead")
      .option('--max-age <seconds>', MAX_AGE_HELP, String(DEFAULT_MAX_AGE_S));

  common(
    job
      .command('run')
      .description('upload an ONNX model and run it on tensors from a JSON file')
      .requiredOption('--model <file.onnx>', 'the ONNX model')
      .requiredOption('--input <file.json>', 'inputs: {name: {type, dims, data (base64) | values}}'),
  ).action(async (opts: RunOpts & { model: string; input: string }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const model = new Uint8Array(readFileArg(opts.model, 'model file'));
    const inputs = readInputs(opts.input);
    const { provider, client, chainId, prover, leaseChipId } = await providerFor(ctx, opts);
    const result = await provider
      .uploadModel(model)
      .then(({ modelHash }) =>
        withRequestOut(provider, opts.requestOut, () => provider.runJob(modelHash, inputs)),
      )
      .finally(() => provider.close());
    await finish(client, chainId, result, opts.receiptOut, prover, leaseChipId);
    const against = prover ? 'the chip key proven on chain' : 'the chip key the node reports';
    ctx.print({ ...result.job, verified: true, proven: prover !== null }, () =>
      [
        `job ${result.job.jobId} done in ${result.receipt.receipt.durationMs} ms on chip ${toHex(result.receipt.receipt.chipId)}`,
        ...Object.entries(result.job.outputs ?? {}).map(([n, t]) => tensorLine(n, t)),
        `receipt verified against ${against}${opts.receiptOut ? `; written to ${opts.receiptOut}` : ''}`,
      ].join('\n'),
    );
  });

  common(
    job
      .command('ocr <image>')
      .description("read the text of a PNG or JPEG image with the provider's OCR job"),
  ).action(async (image: string, opts: RunOpts, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const bytes = new Uint8Array(readFileArg(image, 'image'));
    const { provider, client, chainId, prover, leaseChipId } = await providerFor(ctx, opts);
    const result = await withRequestOut(provider, opts.requestOut, () => provider.runOcr(bytes)).finally(() =>
      provider.close(),
    );
    await finish(client, chainId, result, opts.receiptOut, prover, leaseChipId);
    const against = prover ? 'the chip key proven on chain' : 'the chip key the node reports';
    ctx.print({ ...result.job, verified: true, proven: prover !== null }, () =>
      [
        result.job.ocr?.text ?? '',
        `(job ${result.job.jobId}, ${result.receipt.receipt.durationMs} ms; receipt verified against ${against}${opts.receiptOut ? `, written to ${opts.receiptOut}` : ''})`,
      ].join('\n'),
    );
  });

  proveOnly(job.command('verify <receipt>'))
    .description(
      "check a signed receipt (file or hex) against the chip's key: the record the node reports, or with --chip and --chain-id a record you saved, without any network",
    )
    .option(
      '--chip <file>',
      'the chip record as `unc chip show <id> -o json` printed it: nothing is asked of any node (you vouch for that record)',
    )
    .option('--chain-id <id>', 'the chain the receipt is for (with --chip)')
    .option(
      '--prove',
      "check against the chip key proven on chain (light client), not the node's word, and that the receipt's lease is proven to lease that chip",
    )
    .option('--genesis <file>', "with --prove: the chain's genesis file to trust (default: the home's)")
    .option('--trusted-checkpoint <height:hash>', "with --prove: trust this epoch's last block instead")
    .option('--max-age <seconds>', MAX_AGE_HELP, String(DEFAULT_MAX_AGE_S))
    .addHelpText(
      'after',
      examples([
        'unc job verify receipt.hex                                  # asks the node for the chip record',
        'unc chip show 3f9a1c -o json > chip.json                    # once, from a node you trust',
        'unc job verify receipt.hex --chip chip.json --chain-id unc-dev-1   # offline',
      ]),
    )
    .action(async (arg: string, opts: ProveOpts & { chip?: string; chainId?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const hex = existsSync(arg) ? readFileSync(arg, 'utf8').trim() : arg.trim();
      let signed: ReturnType<typeof decodeSignedReceipt>;
      try {
        signed = decodeSignedReceipt(hex);
      } catch (err) {
        throw new UncError('BAD_RECEIPT', `not a signed receipt: ${(err as Error).message}`);
      }
      if (!!opts.chip !== !!opts.chainId)
        throw new UncError(
          'BAD_ARGUMENT',
          '--chip and --chain-id go together (offline verification needs both)',
        );
      if (opts.prove && opts.chip)
        throw new UncError(
          'BAD_ARGUMENT',
          '--prove reads the chip from the chain; --chip is a record you vouch for',
        );
      let chip: ChipJson | Chip;
      let chainId: string;
      let source: string;
      if (opts.prove) {
        const client = ctx.client();
        chainId = (await client.status()).chainId;
        const prover = (await proverFor(ctx, opts, client))!;
        // The receipt's lease first: a receipt of another chip than the leased one is refused
        // before its signature is checked (RECEIPT_WRONG_CHIP), as `unc job run` refuses it.
        await checkReceiptLease(prover, signed.receipt);
        chip = await provenChip(prover, toHex(signed.receipt.chipId));
        source = `the chip record and the lease's chip proven against validator-signed headers (node ${ctx.nodeUrl} not trusted)`;
      } else if (opts.chip && opts.chainId) {
        chip = readChipRecord(opts.chip);
        chainId = opts.chainId;
        source = `the chip record in ${opts.chip} (offline: no node was asked)`;
      } else {
        const client = ctx.client();
        chainId = (await client.status()).chainId;
        // The lease's chip as the node reports it, when it knows the lease (the same check as
        // --prove's, on the node's word; a receipt of an unknown lease is checked by its chip alone).
        const lease = await getLease(client, toHex(signed.receipt.leaseId)).catch((err) => {
          if (err instanceof UncError && err.code === 'NO_LEASE') return null;
          throw err;
        });
        checkReceiptChip(lease?.chipId, signed.receipt.chipId);
        chip = await client.call<ChipJson>('unc_getChip', [toHex(signed.receipt.chipId)]);
        source = `the chip record node ${ctx.nodeUrl} reports (not a Merkle proof: the node is trusted)`;
      }
      const recordId = typeof chip.chipId === 'string' ? chip.chipId : toHex(chip.chipId);
      if (recordId !== toHex(signed.receipt.chipId))
        throw new UncError(
          'WRONG_CHIP',
          `the receipt is signed for chip ${toHex(signed.receipt.chipId)}, the record is of chip ${recordId}`,
        );
      const view = receiptToJson(signed);
      try {
        verifyReceiptOffline(signed, chip, chainId);
      } catch (err) {
        const e = err as Error & { code?: string };
        if (ctx.output === 'json') {
          console.log(
            JSON.stringify({ ok: false, reason: e.message, code: e.code ?? null, receipt: view }, null, 2),
          );
          process.exit(1);
        }
        throw new UncError(e.code ?? 'RECEIPT_INVALID', `receipt does not verify: ${e.message}`);
      }
      ctx.print({ ok: true, checkedAgainst: source, receipt: view }, () =>
        [
          `ok: signed by chip ${view.chipId} (${chip.vendorId}/${chip.modelId}, ${view.profile})`,
          `  checked against ${source}`,
          `  lease  ${view.leaseId}`,
          `  job    ${view.jobId}`,
          `  model  ${view.modelHash}`,
          `  input  ${view.inputHash}`,
          `  output ${view.outputHash}`,
          `  start  ${new Date(view.startMs).toISOString()}, ${view.durationMs} ms`,
        ].join('\n'),
      );
    });

  return job;
}

/** A chip record saved with `unc chip show <id> -o json`. */
function readChipRecord(path: string): ChipJson {
  let json: unknown;
  try {
    json = JSON.parse(readFileArg(path, 'chip record').toString('utf8'));
  } catch (err) {
    if (err instanceof UncError) throw err;
    throw new UncError('BAD_FILE', `${path} is not JSON: ${(err as Error).message}`);
  }
  const c = json as Partial<ChipJson>;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.chipId !== 'string' ||
    typeof c.keyMaterial !== 'string'
  )
    throw new UncError('BAD_FILE', `${path} is not a chip record (unc chip show <id> -o json)`);
  return c as ChipJson;
}
