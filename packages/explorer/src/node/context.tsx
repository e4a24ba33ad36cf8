/** React bindings of the NodeWatcher, and a small data-fetching hook for pages. */
import {
  createContext,
  type ReactNode,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
} from 'react';
import { NodeUnreachableError, type UncClient } from '../sdk';
import type { NodeSnapshot, NodeWatcher } from './watcher';

const WatcherContext = createContext<NodeWatcher | null>(null);

export function NodeProvider({ watcher, children }: { watcher: NodeWatcher; children: ReactNode }) {
  useEffect(() => {
    watcher.start();
    return () => watcher.stop();
  }, [watcher]);
  return <WatcherContext.Provider value={watcher}>{children}</WatcherContext.Provider>;
}

export function useWatcher(): NodeWatcher {
  const w = useContext(WatcherContext);
  if (!w) throw new Error('useWatcher outside NodeProvider');
  return w;
}

/** The live node snapshot; re-renders on every change. */
export function useNode(): NodeSnapshot {
  const w = useWatcher();
  return useSyncExternalStore(w.subscribe, w.getSnapshot);
}

/** The current time, ticking every `intervalMs` (for "5 s ago" labels and countdowns). */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
}

export interface RpcState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `fn` against the node whenever `key` changes, when the node comes back after an outage,
 * every `refreshMs` if given, and again a few seconds after the node could not be reached.
 */
export function useRpc<T>(
  key: string,
  fn: (client: UncClient) => Promise<T>,
  opts: { refreshMs?: number } = {},
): RpcState<T> {
  const watcher = useWatcher();
  const { epoch } = useNode();
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const [nonce, setNonce] = useState(0);
  const [state, setState] = useState<{ key: string; data: T | undefined; error: unknown; loading: boolean }>({
    key,
    data: undefined,
    error: undefined,
    loading: true,
  });

  // biome-ignore lint/correctness/useExhaustiveDependencies: epoch and nonce are re-run triggers.
  useEffect(() => {
    const client = watcher.client;
    if (!client) return;
    let cancelled = false;
    let retry: ReturnType<typeof setTimeout> | null = null;
    // A reload of the same key keeps what is shown (data or error) until the answer arrives.
    setState((s) =>
      s.key === key ? { ...s, loading: true } : { key, data: undefined, error: undefined, loading: true },
    );
    fnRef.current(client).then(
      (data) => {
        if (!cancelled) setState({ key, data, error: undefined, loading: false });
      },
      (error: unknown) => {
        if (cancelled) return;
        setState((s) => ({ key, data: s.key === key ? s.data : undefined, error, loading: false }));
        if (error instanceof NodeUnreachableError) retry = setTimeout(() => setNonce((n) => n + 1), 3000);
      },
    );
    return () => {
      cancelled = true;
      if (retry) clearTimeout(retry);
    };
  }, [key, epoch, nonce, watcher]);

  useEffect(() => {
    if (!opts.refreshMs) return;
    const t = setInterval(() => setNonce((n) => n + 1), opts.refreshMs);
    return () => clearInterval(t);
  }, [opts.refreshMs]);

  const current = state.key === key;
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: !current || state.loading,
    reload: () => setNonce((n) => n + 1),
  };
}
