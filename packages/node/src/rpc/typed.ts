/**
 * Binds the node's handlers to the RPC schema (`@unc/sdk/schema`): every call's params are parsed
 * and checked before the handler runs, so a handler receives decoded values of the declared types
 * and bad params are a -32602 naming the parameter (in the message and in `error.data.field`),
 * with nothing done. The handler tables are typed by the schema: a method in the schema without a
 * handler, or a handler returning the wrong shape, does not compile.
 */
import {
  type ParamEntries,
  type ParamsOutputOf,
  parseParams,
  type RpcEvent,
  type RpcMethodName,
  type RpcParamsOut,
  type RpcResult,
  type RpcSubscriptionName,
  type RpcSubscriptionParamsOut,
  rpcMethods,
  rpcSubscriptions,
} from '@unc/sdk/schema';
import { RpcError, RpcErrorCode } from './errors.js';
import type { RpcContext, RpcHandler, RpcSubscription } from './server.js';

export type RpcImplementation = {
  [M in RpcMethodName]: (params: RpcParamsOut<M>, ctx: RpcContext) => RpcResult<M> | Promise<RpcResult<M>>;
};

export type RpcSubscriptionImplementation = {
  [S in RpcSubscriptionName]: (
    params: RpcSubscriptionParamsOut<S>,
    emit: (event: RpcEvent<S>) => void,
  ) => () => void;
};

function checked<E extends ParamEntries>(
  entries: E,
  raw: unknown,
  check?: { test: (p: ParamsOutputOf<E>) => boolean; message: string },
): ParamsOutputOf<E> {
  const outcome = parseParams(entries, raw, check);
  if (!outcome.ok) {
    throw new RpcError(
      RpcErrorCode.INVALID_PARAMS,
      outcome.message,
      outcome.field === null ? undefined : { field: outcome.field },
    );
  }
  return outcome.value;
}

export function bindMethods(impl: RpcImplementation): Record<string, RpcHandler> {
  const out: Record<string, RpcHandler> = {};
  for (const name of Object.keys(rpcMethods) as RpcMethodName[]) {
    const spec = rpcMethods[name] as unknown as {
      params: ParamEntries;
      check?: { test: (p: ParamsOutputOf<ParamEntries>) => boolean; message: string };
    };
    const handler = impl[name] as (params: unknown, ctx: RpcContext) => unknown;
    out[name] = (raw, ctx) => handler(checked(spec.params, raw, spec.check), ctx);
  }
  return out;
}

export function bindSubscriptions(impl: RpcSubscriptionImplementation): Record<string, RpcSubscription> {
  const out: Record<string, RpcSubscription> = {};
  for (const name of Object.keys(rpcSubscriptions) as RpcSubscriptionName[]) {
    const start = impl[name] as (params: unknown, emit: (event: unknown) => void) => () => void;
    out[name] = (raw, emit) => start(checked(rpcSubscriptions[name].params, raw), emit);
  }
  return out;
}
