/**
 * A small hash router: `#/block/12` → the route whose pattern is `/block/:ref`, with params {ref: '12'}.
 * Hash routing keeps the explorer servable from any path (the node serves it at /explorer/) and
 * leaves the query string (`?rpc=…`) alone. A query inside the hash (`#/miner?owner=unc1…`) is the
 * page's own: it reaches the page as `query`.
 */
import { type ComponentType, useEffect, useState } from 'react';

export type Params = Record<string, string>;

export interface PageProps {
  params: Params;
  /** The query inside the hash (`#/chips?owner=…`), decoded. */
  query: Params;
}

export interface RouteDef {
  /** Segments; `:name` captures one segment. */
  pattern: string;
  page: ComponentType<PageProps>;
  /** The nav tab this page belongs to (highlighted in the top bar). */
  section: string;
}

export function currentPath(): string {
  const raw = window.location.hash.replace(/^#/, '');
  return raw.startsWith('/') ? raw : `/${raw}`;
}

/** `/miner?owner=x` → { path: '/miner', query: { owner: 'x' } }. */
export function splitQuery(path: string): { path: string; query: Params } {
  const i = path.indexOf('?');
  if (i < 0) return { path, query: {} };
  const query: Params = {};
  for (const [k, v] of new URLSearchParams(path.slice(i + 1))) query[k] = v;
  return { path: path.slice(0, i), query };
}

export function matchRoute(routes: RouteDef[], fullPath: string): { route: RouteDef; params: Params } | null {
  const path = splitQuery(fullPath).path;
  const parts = path.split('/').filter(Boolean);
  for (const route of routes) {
    const pattern = route.pattern.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params: Params = {};
    let ok = true;
    for (let i = 0; i < pattern.length; i++) {
      const p = pattern[i]!;
      let part: string;
      try {
        part = decodeURIComponent(parts[i]!);
      } catch {
        ok = false;
        break;
      }
      if (p.startsWith(':')) params[p.slice(1)] = part;
      else if (p !== part) {
        ok = false;
        break;
      }
    }
    if (ok) return { route, params };
  }
  return null;
}

/** The current hash path, re-rendering on navigation. */
export function usePath(): string {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const onChange = () => setPath(currentPath());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return path;
}

/** The href of an explorer path, e.g. href('/block/12') → '#/block/12'. */
export function href(path: string): string {
  return `#${path}`;
}

export function navigate(path: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) {
    const url = `${window.location.pathname}${window.location.search}#${path}`;
    window.history.replaceState(null, '', url);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    window.location.hash = path;
  }
}

export const paths = {
  overview: () => '/',
  blocks: (from?: number) => (from === undefined ? '/blocks' : `/blocks/${from}`),
  block: (ref: number | string) => `/block/${ref}`,
  tx: (hash: string) => `/tx/${hash}`,
  account: (address: string) => `/account/${address}`,
  search: (q: string) => `/search/${encodeURIComponent(q)}`,
  chips: (owner?: string) => (owner ? `/chips?owner=${encodeURIComponent(owner)}` : '/chips'),
  chip: (chipId: string) => `/chip/${chipId}`,
  miner: (owner?: string) => (owner ? `/miner?owner=${encodeURIComponent(owner)}` : '/miner'),
  validators: () => '/validators',
  market: () => '/market',
  lease: (id: string) => `/lease/${id}`,
  offer: (id: string) => `/offer/${id}`,
};
