/**
 * Actions and events of any type. Transfers and fees get their own layout; every other type
 * (governance, chip registration, heartbeats, … and whatever comes next) is shown field by field,
 * so a new protocol action appears in the explorer without a code change here.
 */
import type { ReactNode } from 'react';
import { big, formatInt, shortHash } from '../format';
import { href, paths } from '../router';
import type { ActionJson, TxEventJson, TxJson } from '../sdk';
import { ArrowRightIcon } from './icons';
import { AddrLink, Amount, Badge, ChainText } from './ui';

/** The UNC a transaction moves with its transfer actions. */
export function transferredAmount(tx: TxJson): bigint {
  let sum = 0n;
  // big(): a node can answer anything as an amount, and a throw here blanks the whole page.
  for (const a of tx.actions) if (a.type === 'transfer') sum += big(a.amount);
  return sum;
}

/** The account an action sends something to, if it has one. */
export function actionRecipient(a: ActionJson): string | undefined {
  if (a.type === 'transfer') return a.to;
  if (a.type === 'transferChip') return a.newOwner;
  if (a.type === 'setHeartbeatOperator') return a.operator ?? undefined;
  return undefined;
}

export function involves(tx: TxJson, address: string): boolean {
  return tx.from === address || tx.actions.some((a) => actionRecipient(a) === address);
}

/** "registerChip" → "register chip". */
export function typeLabel(type: string): string {
  return String(type)
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase();
}

/**
 * An action's or event's type, or a field's name, on the page: the chain's are camelCase words, but
 * a node answers what it likes, so it goes through ChainText like any text the explorer did not write.
 */
export function TypeLabel({ type }: { type: string }) {
  return <ChainText text={typeLabel(type)} />;
}

export function eventTone(type: string): 'accent' | 'warn' | 'ok' | 'danger' | 'poci' | 'neutral' {
  if (type === 'transfer') return 'accent';
  if (type === 'fee') return 'warn';
  if (type === 'slotAnswered') return 'ok';
  if (type === 'slotMissed') return 'danger';
  if (/chip|heartbeat/i.test(type)) return 'poci';
  return 'neutral';
}

/** A one-cell summary of a transaction's actions, for tables. */
export function ActionsSummary({ tx }: { tx: TxJson }) {
  const hasTransfer = tx.actions.some((a) => a.type === 'transfer');
  if (hasTransfer) return <Amount value={transferredAmount(tx)} />;
  const types = [...new Set(tx.actions.map((a) => a.type))];
  return (
    <span className="types">
      {types.map((t) => (
        <Badge key={t} tone={eventTone(t)}>
          <TypeLabel type={t} />
        </Badge>
      ))}
    </span>
  );
}

function isAddress(v: string): boolean {
  return /^unc1[0-9a-z]{30,}$/.test(v);
}

/** Fields that hold base units of UNC. */
const AMOUNT_FIELDS = new Set([
  'amount',
  'burned',
  'toProposer',
  'deposit',
  'pricePerHour',
  'maxPricePerHour',
  'paid',
  'refunded',
  'remaining',
  'released',
]);

/** Fields (and list fields, by their name) whose 64-hex value opens a page. */
const ID_LINKS: Record<string, (id: string) => string> = {
  chipId: paths.chip,
  chipIds: paths.chip,
  leaseId: paths.lease,
  offerId: paths.offer,
};

function FieldValue({ name, value }: { name: string; value: unknown }): ReactNode {
  if (value === null || value === undefined || value === '') return <span className="faint">—</span>;
  if (typeof value === 'string') {
    if (isAddress(value)) return <AddrLink address={value} />;
    if (AMOUNT_FIELDS.has(name) && /^\d+$/.test(value)) return <Amount value={value} maxFrac={18} />;
    const link = ID_LINKS[name];
    if (link && /^[0-9a-f]{64}$/.test(value))
      return (
        <a className="mono" href={href(link(value))} title={value}>
          {shortHash(value, 10, 8)}
        </a>
      );
    if (/^[0-9a-f]{40,}$/.test(value))
      return (
        <span className="mono" title={value}>
          {shortHash(value, 10, 8)}
        </span>
      );
    return <ChainText text={value} />;
  }
  if (typeof value === 'number') return <span className="mono">{formatInt(value)}</span>;
  if (typeof value === 'boolean') return <span>{value ? 'yes' : 'no'}</span>;
  if (Array.isArray(value)) {
    if (value.length === 0) return <span className="faint">none</span>;
    return (
      <ul className="field-list">
        {value.slice(0, 20).map((v, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: positional data
          <li key={i}>
            {v && typeof v === 'object' ? (
              <Fields value={v as Record<string, unknown>} />
            ) : (
              <FieldValue name={name} value={v} />
            )}
          </li>
        ))}
        {value.length > 20 ? <li className="faint">… {value.length - 20} more</li> : null}
      </ul>
    );
  }
  if (typeof value === 'object') return <Fields value={value as Record<string, unknown>} />;
  return <span>{String(value)}</span>;
}

/** Every field of an action or event but its type, as "name value" pairs. */
export function Fields({ value, skip = ['type'] }: { value: Record<string, unknown>; skip?: string[] }) {
  const entries = Object.entries(value).filter(([k]) => !skip.includes(k));
  if (entries.length === 0) return null;
  return (
    <span className="fields">
      {entries.map(([k, v]) => (
        <span className="field" key={k}>
          <span className="field-name">
            <TypeLabel type={k} />
          </span>
          <FieldValue name={k} value={v} />
        </span>
      ))}
    </span>
  );
}

/** A memo is hex on the wire; show it as text when it is printable UTF-8. */
export function memoText(hex: string): { text: string; isText: boolean } {
  if (!hex) return { text: '', isText: true };
  try {
    const bytes = new Uint8Array((hex.match(/../g) ?? []).map((b) => Number.parseInt(b, 16)));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
    if (!/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text)) return { text, isText: true };
  } catch {
    // not UTF-8
  }
  return { text: hex, isText: false };
}

export function Memo({ hex }: { hex: string }) {
  const m = memoText(hex);
  if (!m.text) return null;
  return m.isText ? (
    <span className="memo">
      “<ChainText text={m.text} lines />”
    </span>
  ) : (
    <span className="mono">0x{m.text}</span>
  );
}

export function ActionItem({ action, index }: { action: ActionJson; index: number }) {
  return (
    <li className="event">
      <span className="event-index">{index}</span>
      <Badge tone={eventTone(action.type)}>
        <TypeLabel type={action.type} />
      </Badge>
      <span className="event-body">
        {action.type === 'transfer' ? (
          <>
            <Amount value={action.amount} maxFrac={18} /> <ArrowRightIcon size={13} />{' '}
            <AddrLink address={action.to} />
            <Memo hex={action.memo} />
          </>
        ) : (
          <Fields value={action as unknown as Record<string, unknown>} />
        )}
      </span>
    </li>
  );
}

export function EventItem({ event }: { event: TxEventJson }) {
  let body: ReactNode;
  if (event.type === 'transfer') {
    body = (
      <>
        <AddrLink address={event.from} /> <ArrowRightIcon size={13} /> <AddrLink address={event.to} />
        <Amount value={event.amount} maxFrac={18} />
        <Memo hex={event.memo} />
      </>
    );
  } else if (event.type === 'fee') {
    body = (
      <>
        <AddrLink address={event.payer} /> paid <Amount value={event.amount} maxFrac={18} /> · burned{' '}
        <Amount value={event.burned} maxFrac={18} /> · to the proposer{' '}
        <Amount value={event.toProposer} maxFrac={18} />
      </>
    );
  } else {
    body = <Fields value={event as unknown as Record<string, unknown>} />;
  }
  return (
    <li className="event">
      <Badge tone={eventTone(event.type)}>
        <TypeLabel type={event.type} />
      </Badge>
      <span className="event-body">{body}</span>
    </li>
  );
}
