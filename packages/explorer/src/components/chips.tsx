/** Chip parts shared by the chips, chip, miner and account pages. */
import type { ReactNode } from 'react';
import { formatInt, plural, visibleText } from '../format';
import {
  type ChipState,
  chipState,
  formatPower,
  type Hint,
  type LivenessParams,
  modelName,
  shortChip,
  totalMissed,
  vendorName,
} from '../poci';
import { href, paths } from '../router';
import type { ChipJson, EpochJson, ModelJson, SlotJson, VendorJson } from '../sdk';
import { AlertIcon, CheckIcon, ChipIcon } from './icons';
import { AddrLink, Badge, ChainText, Empty, StatusWord, TableWrap } from './ui';

const STATE_BADGE: Record<ChipState, { tone: 'ok' | 'warn' | 'danger' | 'neutral'; text: string }> = {
  online: { tone: 'ok', text: 'online' },
  missing: { tone: 'warn', text: 'online · missing' },
  offline: { tone: 'danger', text: 'OFFLINE' },
  revoked: { tone: 'danger', text: 'revoked' },
  deregistered: { tone: 'neutral', text: 'deregistered' },
};

export function ChipStatusBadge({ chip }: { chip: ChipJson }) {
  const state = chipState(chip);
  const b = STATE_BADGE[state];
  const title =
    state === 'offline' || state === 'missing'
      ? `${plural(chip.consecutiveMisses, 'missed slot')} in a row`
      : chip.statusReason
        ? visibleText(chip.statusReason)
        : undefined;
  return (
    <span title={title} data-testid="chip-status" data-state={state}>
      <Badge tone={b.tone}>{b.text}</Badge>
    </span>
  );
}

export const SLOT_TEXT: Record<SlotJson['status'], string> = {
  answered: 'answered',
  missed: 'missed',
  open: 'open (window running)',
};

/** The slot states the chain has: a class name or a word built from a slot uses one of these. */
export const SLOT_STATUSES: readonly SlotJson['status'][] = ['answered', 'missed', 'open'];

/** The slot's status when it is one the explorer knows, else "unknown" (a node can send anything). */
export function slotStatus(s: Pick<SlotJson, 'status'>): SlotJson['status'] | 'unknown' {
  return SLOT_STATUSES.includes(s.status) ? s.status : 'unknown';
}

export function slotTip(s: SlotJson, reason?: string): string {
  const base = `Challenge ${s.slot} of epoch ${s.epoch} by block ${s.height}: ${SLOT_STATUSES.includes(s.status) ? SLOT_TEXT[s.status] : visibleText(s.status)}`;
  if (s.status === 'missed')
    return `${base} — ${reason !== undefined ? visibleText(reason) : `no answer included by height ${s.windowEnd}`}`;
  if (s.status === 'open') return `${base}, answerable until height ${s.windowEnd}`;
  return base;
}

/** The chip's slots of the two epochs as a row of small cells (tables). */
export function SlotStrip({ slots }: { slots: SlotJson[] }) {
  if (slots.length === 0) return <span className="faint">—</span>;
  let prev: number | null = null;
  return (
    <span
      className="slot-strip"
      role="img"
      aria-label={slots.map((s) => `${s.height} ${slotStatus(s)}`).join(', ')}
    >
      {slots.map((s) => {
        const gap = prev !== null && s.epoch !== prev;
        prev = s.epoch;
        return (
          <span
            key={`${s.epoch}:${s.slot}`}
            className={`slot-dot slot-${slotStatus(s)} ${gap ? 'slot-epoch-gap' : ''}`}
            title={slotTip(s)}
          />
        );
      })}
    </span>
  );
}

export function ChipLink({ chipId }: { chipId: string }) {
  return (
    <a className="mono" href={href(paths.chip(chipId))} title={chipId}>
      {shortChip(chipId)}
      {chipId.slice(-4)}
    </a>
  );
}

export function ChipsTable({
  chips,
  models,
  vendors,
  params,
  showOwner = true,
  testId,
  empty = 'No chips registered yet.',
}: {
  chips: ChipJson[];
  models: ModelJson[];
  vendors: VendorJson[];
  params: LivenessParams;
  showOwner?: boolean;
  testId?: string;
  empty?: ReactNode;
}) {
  if (chips.length === 0) return <Empty>{empty}</Empty>;
  return (
    <TableWrap>
      <table className="table table-chips" data-testid={testId}>
        <thead>
          <tr>
            <th>Chip</th>
            <th className="hide-sm">Vendor / model</th>
            <th className="hide-md">Profile</th>
            <th className="num col-power">Power</th>
            <th className="col-status">Status</th>
            <th className="col-strip">Last two epochs</th>
            <th className="num col-counts">Answered / missed</th>
            {showOwner ? <th className="hide-md">Owner</th> : null}
          </tr>
        </thead>
        <tbody>
          {chips.map((c) => {
            const missed = totalMissed(c, params);
            return (
              <tr key={c.chipId} data-chip={c.chipId}>
                <td className="col-chip">
                  <div className="cell-main">
                    <ChipIcon size={15} />
                    <ChipLink chipId={c.chipId} />
                  </div>
                  <div className="cell-sub show-sm">
                    <ChainText text={modelName(c, models)} />
                  </div>
                </td>
                <td className="hide-sm">
                  <div className="cell-main">
                    <ChainText text={modelName(c, models)} />
                  </div>
                  <div className="cell-sub">
                    <ChainText text={vendorName(c.vendorId, vendors)} />
                  </div>
                </td>
                <td className="hide-md">
                  <ChainText className="profile" text={c.profile} />
                </td>
                <td className="num nowrap col-power">{formatPower(c.power)}</td>
                <td className="col-status">
                  <ChipStatusBadge chip={c} />
                </td>
                <td className="col-strip">
                  <SlotStrip slots={c.slots} />
                </td>
                <td
                  className="num nowrap col-counts"
                  title={
                    missed.unrecorded > 0 || missed.atLeast
                      ? `${c.slotsMissed} missed slots recorded on chain, ${missed.unrecorded}${missed.atLeast ? ' or more' : ''} more not yet (the chain records misses when the chip next answers)`
                      : undefined
                  }
                >
                  <span className="ok-text">{formatInt(c.slotsAnswered)}</span>
                  <span className="faint"> / </span>
                  <span className={missed.total > 0 ? 'danger-text' : 'faint'}>
                    {formatInt(missed.total)}
                    {missed.atLeast ? '+' : ''}
                  </span>
                </td>
                {showOwner ? (
                  <td className="hide-md">
                    <AddrLink address={c.owner} />
                  </td>
                ) : null}
              </tr>
            );
          })}
        </tbody>
      </table>
    </TableWrap>
  );
}

/**
 * Every slot of the previous and the current epoch, one row per epoch: a cell per slot in height
 * order (colour = outcome, tooltip = height and status), over a track of the epoch's blocks with
 * the slots and the head marked.
 */
export function UptimeTimeline({
  chip,
  epoch,
  head,
  reasons,
}: {
  chip: ChipJson;
  epoch: EpochJson;
  head: number;
  /** Why a missed slot was missed, by `epoch:slot`, where the chain recorded it. */
  reasons: Map<string, string>;
}) {
  const rows = [epoch.epoch - 1, epoch.epoch].filter((e) => e >= 0);
  return (
    <div className="timeline" data-testid="uptime-timeline">
      {rows.map((e) => {
        const start = epoch.startHeight - (epoch.epoch - e) * epoch.epochBlocks;
        const end = start + epoch.epochBlocks - 1;
        const slots = chip.slots.filter((s) => s.epoch === e);
        const current = e === epoch.epoch;
        return (
          <div className="epoch-row" key={e}>
            <div className="epoch-label">
              <strong>Epoch {formatInt(e)}</strong>
              <span>
                #{formatInt(start)}–#{formatInt(end)} · {current ? 'current' : 'previous'}
              </span>
            </div>
            {slots.length === 0 ? (
              <div className="epoch-empty">
                {e < chip.firstEpoch ? 'Not registered yet: its slots start in a later epoch.' : 'No slots.'}
              </div>
            ) : (
              <div className="epoch-body">
                <div className="slot-cells">
                  {slots.map((s) => {
                    const tip = slotTip(s, reasons.get(`${s.epoch}:${s.slot}`));
                    return (
                      <div
                        key={s.slot}
                        className={`slot-cell slot-${slotStatus(s)}`}
                        data-testid="slot-cell"
                        data-status={s.status}
                        data-tip={tip}
                        title={tip}
                        // biome-ignore lint/a11y/noNoninteractiveTabindex: focus shows the tooltip on touch screens
                        tabIndex={0}
                      >
                        <span className="slot-cell-status">
                          {s.status === 'answered' ? (
                            <CheckIcon size={13} />
                          ) : s.status === 'missed' ? (
                            <AlertIcon size={13} />
                          ) : null}
                          <StatusWord value={s.status} known={SLOT_STATUSES} />
                        </span>
                        <span className="slot-cell-height">#{formatInt(s.height)}</span>
                      </div>
                    );
                  })}
                </div>
                <div className="epoch-track" aria-hidden="true">
                  {slots.map((s) => (
                    <span
                      key={s.slot}
                      className={`track-tick slot-${slotStatus(s)}`}
                      style={{ left: `${((s.height - start + 0.5) / epoch.epochBlocks) * 100}%` }}
                    />
                  ))}
                  {current && head >= start && head <= end ? (
                    <span
                      className="track-head"
                      style={{ left: `${((head - start + 0.5) / epoch.epochBlocks) * 100}%` }}
                      title={`head #${head}`}
                    />
                  ) : null}
                </div>
              </div>
            )}
          </div>
        );
      })}
      <ul className="timeline-legend">
        {(['answered', 'missed', 'open'] as const).map((s) => (
          <li key={s}>
            <span className={`slot-dot slot-${s}`} /> {SLOT_TEXT[s]}
          </li>
        ))}
        <li>
          <span className="track-head-legend" /> head
        </li>
      </ul>
    </div>
  );
}

const HINT_ICON: Record<Hint['tone'], ReactNode> = {
  ok: <CheckIcon size={16} />,
  info: <ChipIcon size={16} />,
  warn: <AlertIcon size={16} />,
  danger: <AlertIcon size={16} />,
};

/** "What to fix": one line per hint, worst first. */
export function HintList({ hints }: { hints: Hint[] }) {
  return (
    <ul className="hints" data-testid="miner-hints">
      {hints.map((h) => (
        <li
          key={`${h.chipId ?? ''}:${h.text}:${h.chainText ?? ''}`}
          className={`hint hint-${h.tone}`}
          data-tone={h.tone}
        >
          <span className="hint-icon">{HINT_ICON[h.tone]}</span>
          <div>
            <div className="hint-text">
              {h.chipId ? <HintText text={h.text} chipId={h.chipId} /> : capitalize(h.text)}
              {h.chainText !== undefined ? (
                <>
                  {' '}
                  <ChainText text={h.chainText} />
                </>
              ) : null}
            </div>
            {h.fix ? <div className="hint-fix">{h.fix}</div> : null}
          </div>
        </li>
      ))}
    </ul>
  );
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The hint's text with its chip name as a link to the chip. */
function HintText({ text, chipId }: { text: string; chipId: string }) {
  const name = shortChip(chipId);
  const i = text.indexOf(name);
  if (i < 0) return <>{capitalize(text)}</>;
  return (
    <>
      {capitalize(text.slice(0, i))}
      <a className="mono" href={href(paths.chip(chipId))} title={chipId}>
        {name}
      </a>
      {text.slice(i + name.length)}
    </>
  );
}
