/**
 * RPC request metrics: every call of a registered method is counted and timed, by method and
 * outcome. The method label takes only registered names (an unknown method never reaches a
 * handler), and the outcome only a short fixed vocabulary, so neither can grow without bound.
 */
import { UncError } from '@unc/core';
import { DEFAULT_SECONDS_BUCKETS, type Registry } from './metrics.js';
import { RpcError, type RpcServerModules } from './rpc/server.js';

type Methods = RpcServerModules['methods'];

/**
 * ok; invalid_params (-32602); an application error's reason (NOT_FOUND, PENDING, …: the codes
 * of UncError, upper-case identifiers); rpc_error (another JSON-RPC error); internal (a bug).
 */
export function outcomeOf(err: unknown): string {
  if (err instanceof RpcError) return err.code === -32602 ? 'invalid_params' : 'rpc_error';
  if (err instanceof UncError) return /^[A-Z][A-Z0-9_]{0,39}$/.test(err.code) ? err.code : 'error';
  return 'internal';
}

/** The same methods, each counted and timed in `r`. */
export function instrumentRpcMethods(methods: Methods, r: Registry): Methods {
  const requests = r.counter('unc_rpc_requests_total', 'RPC method calls, by method and outcome');
  const duration = r.histogram(
    'unc_rpc_request_duration_seconds',
    'Time to answer an RPC method call (the method only, not the transport), by method and outcome',
    DEFAULT_SECONDS_BUCKETS,
  );
  const out: Methods = {};
  for (const [method, handler] of Object.entries(methods)) {
    out[method] = async (params, ctx) => {
      const start = process.hrtime.bigint();
      let outcome = 'ok';
      try {
        return await handler(params, ctx);
      } catch (err) {
        outcome = outcomeOf(err);
        throw err;
      } finally {
        const labels = { method, outcome };
        requests.inc(1, labels);
        duration.observe(Number(process.hrtime.bigint() - start) / 1e9, labels);
      }
    };
  }
  return out;
}
