/**
 * A small JSON-RPC node for gateway tests: it accepts every transaction and never reports one
 * included (no WebSocket, so every wait for inclusion fails at once, as a timed-out wait does);
 * its leases, block time and transaction status are what the test sets in `state`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { GatewayOptions } from '../src/gateway.js';

const UNC = 10n ** 18n;

export function mempoolOnlyNode(
  sent: string[],
  state: {
    txStatus: string;
    leases?: unknown[];
    /** unc_getLease's answer by lease id. */
    lease?: Record<string, unknown>;
    /** The chain's latest block time (ms). */
    timeMs?: number;
    /** More of unc_getParams' answer (e.g. disputeWaitMs). */
    params?: Record<string, unknown>;
    /** The chain id unc_status reports (default unc-inclusion-test). */
    chainId?: string;
    /** The chain's latest height (default 5). */
    height?: number;
    /** With txStatus 'dropped': why (default NONCE_USED: it can never be included). */
    dropCode?: string;
    /** With txStatus 'included': the block time (ms) of the block that included every transaction. */
    includedAtMs?: number;
    /**
     * Refuse every transaction sent with this reason (NONCE_USED, EXPIRED, …) — the node's word:
     * it still records the transaction in `sent`, as a hostile node keeps it to relay later.
     */
    refuseSend?: string;
    /** Counts of the calls by method, if given. */
    calls?: Record<string, number>;
    /** The transactions whose status was asked, in order, if given. */
    statusAsked?: string[];
    /** The events of every transaction unc_getTransaction reports (default none). */
    txEvents?: unknown[];
    /** unc_getOffers' answer, made from the one offer this node lists (default: that offer alone). */
    offers?: (offer: Record<string, unknown>) => unknown[];
  },
): Server {
  const offer = {
    id: 'aa'.repeat(32),
    // A real address: the gateway signs a digest of the offer's terms (offerTermsDigest).
    provider: 'unc1qurswpc8qurswpc8qurswpc8qurswpc8v77tvl',
    price: UNC.toString(),
    minHours: 1,
    maxHours: 4,
    noticeMs: 60_000,
    endpoint: 'http://127.0.0.1:1',
    tlsFingerprints: [],
    attributes: { memoryMiB: 1024, region: 'test' },
    status: 'open',
    createdHeight: 1,
    createdTime: 0,
    closesAt: null,
    leasesOpened: 0,
    chips: [
      {
        chipId: 'bb'.repeat(32),
        modelId: 'm',
        vendorId: 'v',
        power: '1000',
        online: true,
        available: true,
        leaseId: null,
        uptime: { answered: 10, missed: 0, ratio: '1.0000', windowMs: 86_400_000 },
      },
    ],
    power: '1000',
    available: 1,
  };
  const answers: Record<string, (params: unknown[]) => unknown> = {
    unc_status: () => ({
      chainId: state.chainId ?? 'unc-inclusion-test',
      height: state.height ?? 5,
      timeMs: state.timeMs ?? 1_000_000,
      time: '',
    }),
    unc_getLease: (params) => state.lease?.[params[0] as string] ?? null,
    unc_getParams: () => ({ minFeePerByte: '1000', minFeePerAction: '100000', ...state.params }),
    unc_getOffers: () => (state.offers ? state.offers(offer) : [offer]),
    unc_getLeases: () => state.leases ?? [],
    unc_getAccount: () => ({
      address: '',
      balance: (100n * UNC).toString(),
      nonce: 0,
      height: 5,
      stateRoot: '',
    }),
    unc_sendTransaction: (params) => {
      sent.push(params[0] as string);
      return { hash: `${sent.length}`.padStart(64, '0') };
    },
    unc_getTransactionStatus: (params) =>
      state.txStatus === 'included'
        ? { hash: params[0], status: 'included', height: 4, index: 0, blockHash: '00'.repeat(32) }
        : state.txStatus === 'dropped'
          ? {
              hash: params[0],
              status: 'dropped',
              code: state.dropCode ?? 'NONCE_USED',
              reason: '',
              height: 5,
            }
          : { hash: params[0], status: state.txStatus },
    unc_getTransaction: (params) => ({
      hash: params[0],
      height: 4,
      index: 0,
      blockHash: '00'.repeat(32),
      time: new Date(state.includedAtMs ?? 0).toISOString(),
      tx: {},
      events: state.txEvents ?? [],
    }),
  };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const { id, method, params } = JSON.parse(body) as { id: number; method: string; params: unknown[] };
      const answer = answers[method];
      if (state.calls) state.calls[method] = (state.calls[method] ?? 0) + 1;
      if (method === 'unc_getTransactionStatus') state.statusAsked?.push(params[0] as string);
      const refused = method === 'unc_sendTransaction' && state.refuseSend !== undefined;
      if (refused) sent.push(params[0] as string);
      const reply = refused
        ? {
            jsonrpc: '2.0',
            id,
            error: { code: -32000, message: 'refused', data: { reason: state.refuseSend } },
          }
        : answer
          ? { jsonrpc: '2.0', id, result: answer(params) }
          : { jsonrpc: '2.0', id, error: { code: -32601, message: `no ${method} here` } };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
  // No subscriptions here: the wait for inclusion fails at once, as a timed-out one does.
  server.on('upgrade', (_req, socket) => socket.destroy());
  return server;
}

/** Listens on a free loopback port; returns the URL. */
export async function listening(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * The options the gateway tests against `mempoolOnlyNode` share: renter key 7, the OCR model,
 * plain http, a short inclusion wait (the node never reports inclusion) and no tick of its own
 * (`tickMs` an hour, no lease kept open), so that only the test's own steps open or settle
 * anything. `overrides` win.
 */
export function gatewayOptions(
  nodeUrl: string,
  dir: string,
  overrides: Partial<GatewayOptions> = {},
): GatewayOptions {
  return {
    nodeUrl,
    renterSeed: new Uint8Array(32).fill(7),
    // One lease of 1 UNC/h and its fees, not two.
    budgetPerHour: UNC + UNC / 10n,
    models: [{ name: 'ocr' }],
    dbPath: join(dir, 'g.db'),
    allowHttp: true,
    inclusionWaitMs: 300,
    port: 0,
    tickMs: 3_600_000,
    targets: { minLeases: 0 },
    ...overrides,
  };
}

/**
 * The node state of a renter with one active lease of 1 UNC/h on `endpoint`, started a minute
 * before `t0` and escrowed for three hours, and a transaction status of "pending": what the job
 * tests against one provider start from.
 */
export function oneLeaseNode(t0: number, endpoint: string, leaseId = 'dd'.repeat(32)) {
  const state = {
    txStatus: 'pending',
    timeMs: t0,
    leases: [] as unknown[],
    lease: {
      [leaseId]: {
        id: leaseId,
        status: 'active',
        pricePerHour: UNC.toString(),
        startTime: t0 - 60_000,
        escrowUntil: t0 + 3 * 3_600_000,
        endTime: t0 + 3 * 3_600_000,
        closedTime: null,
        endpoint,
        tlsFingerprints: [],
      },
    } as Record<string, unknown>,
  };
  return { leaseId, state };
}
