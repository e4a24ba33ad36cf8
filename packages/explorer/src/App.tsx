/** The shell: top bar (brand, search, node), tabs, the connection banner, the current page. */
import { type FormEvent, useEffect, useRef, useState } from 'react';
import { AlertIcon, Logo, SearchIcon, SettingsIcon } from './components/icons';
import { ChainText } from './components/ui';
import { useNode, useNow, useWatcher } from './node/context';
import { rpcUrlFromPage, switchRpcUrl } from './node/rpcUrl';
import { NotFoundPage } from './pages/NotFound';
import { href, matchRoute, navigate, paths, splitQuery, usePath } from './router';
import { NAV, ROUTES } from './routes';
import { classify } from './search';

function SearchBox() {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const path = usePath();
  // A complaint about the last entry goes away when the page changes, after a while, or on Escape.
  // biome-ignore lint/correctness/useExhaustiveDependencies: path is the trigger
  useEffect(() => setError(null), [path]);
  useEffect(() => {
    if (!error) return;
    const t = setTimeout(() => setError(null), 6000);
    return () => clearTimeout(t);
  }, [error]);
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    const t = classify(value);
    switch (t.kind) {
      case 'height':
        navigate(paths.block(t.height));
        break;
      case 'address':
        navigate(paths.account(t.address));
        break;
      case 'hash':
        navigate(paths.search(t.hash));
        break;
      case 'invalid':
        setError(t.reason);
        return;
    }
    setValue('');
    setError(null);
  };
  return (
    <form className="search" onSubmit={onSubmit} aria-label="Search">
      <SearchIcon size={17} />
      <input
        data-testid="search-input"
        type="search"
        value={value}
        onChange={(e) => {
          setValue(e.target.value);
          setError(null);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            setError(null);
            e.currentTarget.blur();
          }
        }}
        placeholder="Search by height, hash, chip, lease or offer id, address"
        aria-label="Search by block height, block hash, transaction hash, chip id, lease id, offer id or address"
        spellCheck={false}
        autoComplete="off"
      />
      <kbd className="hide-sm">/</kbd>
      {error ? (
        <div className="search-error" role="alert" data-testid="search-error">
          {error}
        </div>
      ) : null}
    </form>
  );
}

function NodeMenu() {
  const node = useNode();
  const [open, setOpen] = useState(false);
  const [value, setValue] = useState(node.url);
  const ref = useRef<HTMLDivElement>(null);
  const source = rpcUrlFromPage().source;
  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener('mousedown', onDown);
    return () => document.removeEventListener('mousedown', onDown);
  }, [open]);
  let host = node.url;
  try {
    host = new URL(node.url).host;
  } catch {
    // shown as given
  }
  return (
    <div className="node-menu" ref={ref}>
      <button
        type="button"
        className={`node-pill node-${node.conn}`}
        onClick={() => {
          setValue(node.url);
          setOpen((o) => !o);
        }}
        aria-expanded={open}
        data-testid="node-pill"
        title="Node settings"
      >
        <span className="dot" />
        <span className="node-host">{host}</span>
        <SettingsIcon size={15} />
      </button>
      {open ? (
        <div className="popover" role="dialog" aria-label="Node settings">
          <form
            onSubmit={(e) => {
              e.preventDefault();
              if (value.trim()) switchRpcUrl(value);
            }}
          >
            <label htmlFor="rpc-url" className="popover-label">
              Node RPC URL
            </label>
            <div className="inline-form">
              <input
                id="rpc-url"
                data-testid="rpc-input"
                className="input mono"
                value={value}
                onChange={(e) => setValue(e.target.value)}
                placeholder="http://127.0.0.1:3030"
                spellCheck={false}
              />
              <button className="btn" type="submit">
                Connect
              </button>
            </div>
          </form>
          <p className="popover-note">
            {source === 'origin'
              ? 'Reading from the node that serves this page.'
              : source === 'dev-default'
                ? 'Development default (unc dev).'
                : 'Set by ?rpc= in the page address.'}{' '}
            {node.live === 'ws'
              ? 'New blocks arrive live over WebSocket.'
              : node.live === 'poll'
                ? (node.liveWhy ?? 'Polling for new blocks.')
                : ''}
          </p>
          {source === 'query' ? (
            <button type="button" className="btn btn-ghost" onClick={() => switchRpcUrl(null)}>
              Use this page’s own node
            </button>
          ) : null}
        </div>
      ) : null}
    </div>
  );
}

/**
 * A link can open this page with `?rpc=` naming any node, and everything the page shows (balances,
 * transfers, "paid") is then that node's word under this site's address: a link to a node that
 * lies is enough to show someone a payment that never happened. Said where the reader looks, with
 * the way back; not when the node is the page's own.
 */
function ForeignNodeBanner() {
  const node = useNode();
  const { source } = rpcUrlFromPage();
  if (source !== 'query') return null;
  let shown: string;
  try {
    // The client posts to the whole URL, path included: the site's origin with another path can be
    // another service behind the same proxy, so only the origin itself is this site's node. Shown
    // as host and path: never the user-info part, which a link can make read as this site's name.
    const u = new URL(node.url);
    if (u.href.replace(/\/$/, '') === window.location.origin) return null;
    shown = u.host + (u.pathname === '/' ? '' : u.pathname);
  } catch {
    // an invalid address has its own banner
    return null;
  }
  return (
    <div className="banner banner-warn" role="note" data-testid="foreign-node">
      <AlertIcon size={18} />
      <div className="banner-text">
        <strong>
          Reading from another node: <ChainText className="mono break" text={shown} />
        </strong>
        <span className="banner-detail">
          The link that opened this page chose it (?rpc=). What this page shows is that node’s word, not this
          site’s.
        </span>
      </div>
      <button type="button" className="btn btn-small" onClick={() => switchRpcUrl(null)}>
        Use this site’s node
      </button>
    </div>
  );
}

function ConnectionBanner() {
  const node = useNode();
  const watcher = useWatcher();
  const now = useNow(500);
  if (node.conn === 'ok') return null;
  if (node.conn === 'connecting') {
    return (
      <div className="banner banner-info" role="status" data-testid="banner">
        <span className="spinner" /> Connecting to the node at <span className="mono">{node.url}</span>…
      </div>
    );
  }
  if (node.conn === 'invalid') {
    return (
      <div className="banner banner-danger" role="alert" data-testid="banner">
        <AlertIcon size={18} />
        <div>
          <strong>The node address is not valid:</strong> <ChainText text={node.error ?? ''} />. Set one with
          the node button at the top right, or open the page with{' '}
          <span className="mono">?rpc=http://127.0.0.1:3030</span>.
        </div>
      </div>
    );
  }
  if (node.conn === 'slow') {
    return (
      <div className="banner banner-warn" role="status" data-testid="banner">
        <span className="spinner" />
        <div>
          <strong>
            The node at <span className="mono">{node.url}</span> is slow to answer
          </strong>{' '}
          — still waiting, retrying.
        </div>
      </div>
    );
  }
  const secs = node.retryAt ? Math.max(0, Math.ceil((node.retryAt - now) / 1000)) : 0;
  return (
    <div className="banner banner-danger" role="alert" data-testid="banner">
      <AlertIcon size={18} />
      <div className="banner-text">
        <strong>
          Cannot reach the node at <span className="mono">{node.url}</span> — retrying
          {secs > 0 ? ` in ${secs} s` : '…'}
        </strong>
        <span className="banner-detail">
          {node.error ? (
            <>
              <ChainText text={node.error} />.{' '}
            </>
          ) : null}
          {node.status
            ? 'What is shown is from before the node went away.'
            : 'Is it running? The node button at the top right changes the address.'}
        </span>
      </div>
      <button type="button" className="btn btn-small" onClick={() => watcher.retryNow()}>
        Retry now
      </button>
    </div>
  );
}

export function App() {
  const path = usePath();
  const match = matchRoute(ROUTES, path);
  const node = useNode();
  const Page = match?.route.page ?? NotFoundPage;
  const section = match?.route.section ?? '';

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new page starts at the top
  useEffect(() => {
    window.scrollTo(0, 0);
  }, [path]);

  // "/" focuses the search box, as on most explorers.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (e.key === '/' && t && !['INPUT', 'TEXTAREA'].includes(t.tagName)) {
        e.preventDefault();
        document.querySelector<HTMLInputElement>('[data-testid="search-input"]')?.focus();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  return (
    <div className="app">
      <header className="topbar">
        <div className="topbar-inner">
          <a className="brand" href={href(paths.overview())}>
            <Logo />
            <span className="brand-name">UtilityNet</span>
            <span className="brand-sub">Explorer</span>
          </a>
          <SearchBox />
          <NodeMenu />
        </div>
        <nav className="tabs" aria-label="Sections">
          <div className="tabs-inner">
            {NAV.map((n) => (
              <a
                key={n.section}
                href={href(n.path)}
                className={`tab ${section === n.section ? 'tab-active' : ''}`}
              >
                {n.icon}
                <span>{n.label}</span>
                {n.soon ? <span className="soon" title="Coming with POCI" /> : null}
              </a>
            ))}
          </div>
        </nav>
      </header>
      <ForeignNodeBanner />
      <ConnectionBanner />
      <main className="main">
        <Page key={path} params={match?.params ?? {}} query={splitQuery(path).query} />
      </main>
      <footer className="footer">
        <span>UtilityNet explorer</span>
        <span className="faint">·</span>
        <ChainText className="mono" text={node.status?.chainId ?? '…'} />
        {node.status ? (
          <>
            <span className="faint">·</span>
            <span>
              node <ChainText text={node.status.version} />
            </span>
          </>
        ) : null}
        <span className="faint">·</span>
        <span className="mono break">{node.url}</span>
      </footer>
    </div>
  );
}
