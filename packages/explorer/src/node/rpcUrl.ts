/**
 * Which node the explorer reads from:
 *   1. `?rpc=http://127.0.0.1:3030` in the page's URL (the settings field writes it there, so a link
 *      keeps its node);
 *   2. under `vite` (development) http://127.0.0.1:3030, the default of `unc dev`;
 *   3. otherwise the page's own origin: the node serves the explorer at /explorer/ and answers
 *      JSON-RPC at / on the same port.
 */
export function rpcUrlFromPage(): { url: string; source: 'query' | 'dev-default' | 'origin' } {
  const q = new URLSearchParams(window.location.search).get('rpc');
  if (q?.trim()) return { url: q.trim(), source: 'query' };
  if (import.meta.env.DEV) return { url: 'http://127.0.0.1:3030', source: 'dev-default' };
  return { url: window.location.origin, source: 'origin' };
}

/** Reloads the page reading from another node (or, with null, from the page's origin). */
export function switchRpcUrl(url: string | null): void {
  const u = new URL(window.location.href);
  if (url === null) u.searchParams.delete('rpc');
  else u.searchParams.set('rpc', url.trim());
  window.location.assign(u.toString());
}
