/** Building blocks shared by the pages. */
import { Fragment, type ReactNode, useState } from 'react';
import { CHAIN_TEXT_MAX, codePointName, formatUnc, shortAddress, shortHash, visibleParts } from '../format';
import { reasonWords } from '../market';
import { href, paths } from '../router';
import { CheckIcon, CopyIcon } from './icons';

export function Card({
  title,
  subtitle,
  actions,
  children,
  className = '',
  testId,
}: {
  title?: ReactNode;
  subtitle?: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  className?: string;
  testId?: string;
}) {
  return (
    <section className={`card ${className}`} data-testid={testId}>
      {title || actions ? (
        <header className="card-head">
          <div>
            {title ? <h2 className="card-title">{title}</h2> : null}
            {subtitle ? <p className="card-sub">{subtitle}</p> : null}
          </div>
          {actions ? <div className="card-actions">{actions}</div> : null}
        </header>
      ) : null}
      {children}
    </section>
  );
}

export function Stat({
  label,
  value,
  hint,
  icon,
  testId,
  accent,
}: {
  label: string;
  value: ReactNode;
  hint?: ReactNode;
  icon?: ReactNode;
  testId?: string;
  accent?: boolean;
}) {
  return (
    <div className={`stat ${accent ? 'stat-accent' : ''}`}>
      <div className="stat-label">
        {icon}
        <span>{label}</span>
      </div>
      <div className="stat-value" data-testid={testId}>
        {value}
      </div>
      {hint ? <div className="stat-hint">{hint}</div> : null}
    </div>
  );
}

/** A definition list: label on the left, value on the right (stacked on narrow screens). */
export function KV({ children }: { children: ReactNode }) {
  return <dl className="kv">{children}</dl>;
}

export function Row({ label, children }: { label: ReactNode; children: ReactNode }) {
  return (
    <div className="kv-row">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

export function CopyButton({ text }: { text: string }) {
  const [done, setDone] = useState(false);
  if (!navigator.clipboard) return null;
  return (
    <button
      type="button"
      className="icon-btn"
      title="Copy"
      aria-label="Copy to clipboard"
      onClick={() => {
        navigator.clipboard.writeText(text).then(
          () => {
            setDone(true);
            setTimeout(() => setDone(false), 1200);
          },
          () => undefined,
        );
      }}
    >
      {done ? <CheckIcon size={14} /> : <CopyIcon size={14} />}
    </button>
  );
}

/** A full hash in monospace that wraps on narrow screens, with a copy button. */
export function FullHash({ value, link }: { value: string; link?: string }) {
  if (!value) return <span className="muted">—</span>;
  return (
    <span className="full-hash">
      {link ? (
        <a className="mono" href={href(link)}>
          {value}
        </a>
      ) : (
        <span className="mono">{value}</span>
      )}
      <CopyButton text={value} />
    </span>
  );
}

export function BlockLink({ height }: { height: number }) {
  return (
    <a className="block-link" href={href(paths.block(height))}>
      #{height.toLocaleString('en-US')}
    </a>
  );
}

export function TxLink({ hash, short = true }: { hash: string; short?: boolean }) {
  return (
    <a className="mono" href={href(paths.tx(hash))} title={hash}>
      {short ? shortHash(hash) : hash}
    </a>
  );
}

/** Bech32 with the chain's prefix: lower-case letters and digits only, nothing hidden. */
const ADDRESS_SHAPE = /^unc1[0-9a-z]{6,}$/;

export function AddrLink({
  address,
  short = true,
  self,
}: {
  address: string;
  short?: boolean;
  self?: string;
}) {
  // A node answers what it likes where an address belongs (an owner, a heartbeat operator, a
  // sender): one with a hidden character would show another address than the one it links to (the
  // reader's own, say). Anything not shaped as an address is chain text, and no link.
  if (!ADDRESS_SHAPE.test(address)) return <ChainText text={address} />;
  if (address === self) {
    return (
      <span className="mono addr-self" title={address}>
        {short ? shortAddress(address) : address}
      </span>
    );
  }
  return (
    <a className="mono" href={href(paths.account(address))} title={address}>
      {short ? shortAddress(address) : address}
    </a>
  );
}

export function Amount({
  value,
  maxFrac = 4,
  unit = true,
}: {
  value: string | bigint;
  maxFrac?: number;
  unit?: boolean;
}) {
  return (
    <span className="amount" title={`${formatUnc(value, 18)} UNC`}>
      {formatUnc(value, maxFrac)}
      {unit ? <span className="unit"> UNC</span> : null}
    </span>
  );
}

export function Badge({
  tone = 'neutral',
  children,
}: {
  tone?: 'neutral' | 'ok' | 'warn' | 'danger' | 'accent' | 'poci';
  children: ReactNode;
}) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

export function Skeleton({ width = '100%', height = 16 }: { width?: number | string; height?: number }) {
  return <span className="skeleton" style={{ width, height }} />;
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function PageTitle({
  kicker,
  title,
  children,
  testId,
}: {
  kicker?: ReactNode;
  title: ReactNode;
  children?: ReactNode;
  testId?: string;
}) {
  return (
    <div className="page-title">
      {kicker ? <div className="kicker">{kicker}</div> : null}
      <h1 data-testid={testId}>{title}</h1>
      {children ? <div className="page-title-extra">{children}</div> : null}
    </div>
  );
}

/** A scroll container for wide tables on narrow screens. */
export function TableWrap({ children }: { children: ReactNode }) {
  return <div className="table-wrap">{children}</div>;
}

/**
 * Text that someone other than the explorer wrote (a memo, a free-text field, an endpoint, a
 * reason a node gives), in a <bdi>, so that even right-to-left letters in it cannot pull the amount
 * or address beside it into their direction. Each hidden character (visibleParts) is a HiddenChar:
 * an element, not characters, so no text on chain can draw one ("〈U+202E〉" typed in look-alike
 * brackets is plain text beside a boxed, labelled U+202E). `lines`: line feeds break the line (memos).
 */
export function ChainText({ text, className, lines }: { text: string; className?: string; lines?: boolean }) {
  return (
    <bdi className={className}>
      {visibleParts(text, CHAIN_TEXT_MAX, lines === true).map((part, i) =>
        'text' in part ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: the parts of one text, never reordered
          <Fragment key={i}>{part.text}</Fragment>
        ) : 'hidden' in part ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: the parts of one text, never reordered
          <HiddenChar key={i} codePoint={part.hidden} />
        ) : 'newline' in part ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: the parts of one text, never reordered
          <br key={i} />
        ) : (
          // biome-ignore lint/suspicious/noArrayIndexKey: the parts of one text, never reordered
          <wbr key={i} />
        ),
      )}
    </bdi>
  );
}

/** A reason code from the chain or node as words ("renter closed"), through ChainText. */
export function ReasonText({ reason }: { reason: string | null | undefined }) {
  return <ChainText text={reasonWords(reason)} />;
}

/**
 * A status word the chain or node gives (a lease's, an offer's, a slot's, a chip's): one of the
 * words the explorer knows, shown as is; anything else a node answers goes through ChainText, so a
 * hostile node's "status" cannot carry hidden characters, nor a class name or a forged marker.
 */
export function StatusWord({ value, known }: { value: string; known: readonly string[] }) {
  return known.includes(value) ? value : <ChainText className="status-unknown" text={value} />;
}

/** A character that draws nothing or turns text around, shown as a boxed code point with a label. */
export function HiddenChar({ codePoint }: { codePoint: number }) {
  const name = codePointName(codePoint);
  return (
    <span
      className="hidden-char"
      role="img"
      aria-label={`hidden character ${name}`}
      title={`hidden character ${name}`}
    >
      {name}
    </span>
  );
}
