/**
 * One chip (`#/chip/<id>`): what it is, who owns it, whether it is online and why not, an uptime
 * timeline of every slot of the previous and the current epoch, and its event log, where every
 * missed slot says why (including the misses the chain records only when the chip next answers).
 */
import { type ReactNode, useState } from 'react';
import { Fields, TypeLabel } from '../components/actions';
import { ChipStatusBadge, UptimeTimeline } from '../components/chips';
import { ChipEarnings } from '../components/earnings';
import { AlertIcon, CheckIcon, ChipIcon } from '../components/icons';
import {
  AddrLink,
  Amount,
  BlockLink,
  Card,
  ChainText,
  CopyButton,
  Empty,
  FullHash,
  KV,
  PageTitle,
  Row,
  Stat,
  StatusWord,
} from '../components/ui';
import { formatInt, plural } from '../format';
import { useRpc } from '../node/context';
import { CHIPS_REFRESH_MS, useRegistries } from '../node/poci';
import {
  chipLog,
  chipState,
  formatPower,
  formatTflops,
  type LogEntry,
  missStreak,
  modelName,
  totalMissed,
  vendorName,
} from '../poci';
import { href, type PageProps, paths } from '../router';
import type { ChipEventJson, ChipJson, EpochJson, ModelJson, VendorJson } from '../sdk';
import { isNotFound, LoadingCard, ProblemCard, RpcErrorCard } from './common';

/** The chip states the chain has (views.ts): any other word a node sends is chain text. */
const CHIP_STATUSES: readonly ChipJson['status'][] = ['active', 'deregistered', 'revoked'];

import { ChipLeases } from './Lease';

/** Events read per refresh: enough for many epochs of a healthy chip. */
export const CHIP_EVENTS = 200;

interface ChipData {
  chip: ChipJson;
  events: ChipEventJson[];
  epoch: EpochJson;
  head: number;
}

const STATE_TEXT = {
  online: 'Online',
  missing: 'Online',
  offline: 'OFFLINE',
  revoked: 'Revoked',
  deregistered: 'Deregistered',
} as const;

function LogLine({
  entry,
  models,
  vendors,
}: {
  entry: LogEntry;
  models: ModelJson[];
  vendors: VendorJson[];
}) {
  let tone: 'ok' | 'danger' | 'warn' | 'neutral' = 'neutral';
  let text: ReactNode;
  let sub: ReactNode = (
    <>
      block <BlockLink height={entry.height} />
    </>
  );
  if (entry.kind === 'silent') {
    tone = 'danger';
    text = `No answer from height ${entry.from} to ${entry.to}: all ${entry.slots} slots of ${
      entry.fromEpoch === entry.toEpoch
        ? `epoch ${entry.fromEpoch}`
        : `epochs ${entry.fromEpoch}–${entry.toEpoch}`
    } were missed`;
    sub =
      'not listed one by one: the node reports slot by slot only the last two epochs, and the chain records these misses when the chip next answers';
  } else if (entry.kind === 'pending') {
    const s = entry.slot;
    tone = 'danger';
    text = (
      <>
        Missed slot {s.slot} of epoch {s.epoch} at height {s.height}: <ChainText text={entry.reason} />
      </>
    );
    sub = (
      <>
        window closed after block <BlockLink height={s.windowEnd} /> · the chain records it when the chip next
        answers
      </>
    );
  } else {
    const e = entry.event;
    switch (e.type) {
      case 'slotMissed':
        tone = 'danger';
        text = (
          <>
            Missed slot {e.slot} of epoch {e.epoch} at height {e.slotHeight}: <ChainText text={e.reason} />
          </>
        );
        sub = (
          <>
            recorded in block <BlockLink height={entry.height} />
          </>
        );
        break;
      case 'slotAnswered':
        tone = 'ok';
        text = `Answered slot ${e.slot} of epoch ${e.epoch} (slot block #${formatInt(e.slotHeight)})`;
        sub = (
          <>
            in block <BlockLink height={entry.height} />, {plural(entry.height - e.slotHeight, 'block')} after
            the slot
          </>
        );
        break;
      case 'chipRegistered':
        text = (
          <>
            Registered by <AddrLink address={e.owner} /> as <ChainText text={modelName(e, models)} /> (
            <ChainText text={vendorName(e.vendorId, vendors)} />
            ), {formatPower(e.power)}
          </>
        );
        break;
      case 'chipTransferred':
        text = (
          <>
            Transferred from <AddrLink address={e.from} /> to <AddrLink address={e.to} />
          </>
        );
        break;
      case 'chipDeregistered':
        text = (
          <>
            Deregistered from its owner <AddrLink address={e.owner} /> (by the owner, or by anyone once its
            credentials were revoked)
          </>
        );
        break;
      case 'chipRebooted':
        tone = 'warn';
        text = `Rebooted: TPM resetCount ${e.resetCount}, restartCount ${e.restartCount}`;
        sub = (
          <>
            block <BlockLink height={entry.height} /> · the TPM was reset or restarted since the chain last
            saw its clock (an answer or a transfer consent), so its clock started again
          </>
        );
        break;
      case 'answerUncredited':
        tone = 'warn';
        text =
          e.reason === 'asleep'
            ? `Answered slot ${e.slot} of epoch ${e.epoch} without credit: asleep (TPM clock advanced ${e.clockAdvanceMs} ms of the ${e.requiredMs} ms required)`
            : `Answered slot ${e.slot} of epoch ${e.epoch} without credit: the TPM rebooted since the previous answer`;
        sub = (
          <>
            in block <BlockLink height={entry.height} /> · counts as a miss; the chip is credited again at its
            next answer if its TPM keeps running
          </>
        );
        break;
      case 'chipRewarded':
        tone = 'ok';
        text = (
          <>
            Earned <Amount value={e.amount} /> for epoch {formatInt(e.epoch)}: {formatInt(e.answered)} of{' '}
            {plural(e.challenged, 'challenge')} answered, {formatInt(e.credited)} credited
          </>
        );
        sub = (
          <>
            block <BlockLink height={entry.height} /> · paid to <AddrLink address={e.owner} /> · its weight{' '}
            {e.weight} of {e.totalWeight} in the epoch’s <Amount value={e.budget} maxFrac={2} />
          </>
        );
        break;
      default: {
        // An event type this page does not know yet: its fields, as the transaction page shows them.
        const other = e as { type: string } & Record<string, unknown>;
        text = (
          <>
            <TypeLabel type={other.type} /> <Fields value={other} skip={['type', 'chipId']} />
          </>
        );
      }
    }
  }
  const type = entry.kind === 'event' ? entry.event.type : 'slotMissed';
  return (
    <li
      className={`log-entry log-${tone}`}
      data-type={type}
      data-pending={entry.kind !== 'event' || undefined}
    >
      <span className="log-icon">
        {tone === 'ok' ? (
          <CheckIcon size={14} />
        ) : tone === 'neutral' ? (
          <ChipIcon size={14} />
        ) : (
          <AlertIcon size={14} />
        )}
      </span>
      <div className="log-body">
        <div className="log-text">{text}</div>
        <div className="log-sub">{sub}</div>
      </div>
    </li>
  );
}

function EventLog({ data, models, vendors }: { data: ChipData; models: ModelJson[]; vendors: VendorJson[] }) {
  const [problems, setProblems] = useState(false);
  const log = chipLog(data.chip, data.events, data.epoch);
  const shown = problems
    ? log.filter(
        (l) =>
          l.kind !== 'event' ||
          l.event.type === 'slotMissed' ||
          l.event.type === 'chipRebooted' ||
          l.event.type === 'answerUncredited',
      )
    : log;
  return (
    <Card
      title="Event log"
      subtitle={`Newest first: every slot answered or missed (and why), registration, transfers and reboots · the last ${CHIP_EVENTS} events`}
      actions={
        <fieldset className="segmented" aria-label="Which events">
          <button type="button" className={problems ? '' : 'on'} onClick={() => setProblems(false)}>
            All
          </button>
          <button type="button" className={problems ? 'on' : ''} onClick={() => setProblems(true)}>
            Misses and reboots
          </button>
        </fieldset>
      }
      testId="chip-log"
      className="area-log"
    >
      {shown.length === 0 ? (
        <Empty>{problems ? 'No missed slots and no reboots in these events.' : 'No events yet.'}</Empty>
      ) : (
        <ul className="log">
          {shown.map((l) => (
            <LogLine
              key={
                l.kind === 'pending'
                  ? `p${l.slot.epoch}:${l.slot.slot}`
                  : l.kind === 'silent'
                    ? `s${l.from}`
                    : `${l.height}:${JSON.stringify(l.event)}`
              }
              entry={l}
              models={models}
              vendors={vendors}
            />
          ))}
        </ul>
      )}
    </Card>
  );
}

export function ChipPage({ params }: PageProps) {
  const id = (params.id ?? '').trim().toLowerCase().replace(/^0x/, '');
  const valid = /^[0-9a-f]{64}$/.test(id);
  const { models, vendors } = useRegistries();
  const res = useRpc<ChipData | null>(
    `chip:${id}`,
    async (c) => {
      if (!valid) return null;
      const [chip, events, epoch, status] = await Promise.all([
        c.call<ChipJson>('unc_getChip', [id]),
        c.call<ChipEventJson[]>('unc_getChipEvents', [id, CHIP_EVENTS]),
        c.call<EpochJson>('unc_getEpoch', []),
        c.status(),
      ]);
      return { chip, events, epoch, head: status.height };
    },
    { refreshMs: CHIPS_REFRESH_MS },
  );

  const title = (
    <span className="title-with-copy">
      <span className="mono break" data-testid="chip-id">
        {id}
      </span>
      {valid ? <CopyButton text={id} /> : null}
    </span>
  );
  const kicker = (extra?: ReactNode) => (
    <>
      <ChipIcon size={15} /> Chip {extra}
    </>
  );

  if (!valid) {
    return (
      <div className="page">
        <ProblemCard title="Not a chip id">
          “<ChainText text={params.id ?? ''} />” is not a chip id (64 hex digits).
        </ProblemCard>
      </div>
    );
  }
  const data = res.data;
  if (!data) {
    return (
      <div className="page">
        <PageTitle kicker={kicker()} title={title} />
        {res.error ? (
          isNotFound(res.error) ? (
            <ProblemCard title="No such chip" testId="chip-none">
              No chip with this id is registered on this chain.
            </ProblemCard>
          ) : (
            <RpcErrorCard error={res.error} what="chip" />
          )
        ) : (
          <LoadingCard lines={6} />
        )}
      </div>
    );
  }

  const { chip, epoch, head } = data;
  const state = chipState(chip);
  const missed = totalMissed(chip, epoch);
  const streak = missStreak(chip, epoch);
  const reasons = new Map<string, string>();
  for (const e of data.events)
    if (e.event.type === 'slotMissed') reasons.set(`${e.event.epoch}:${e.event.slot}`, e.event.reason);
  const statusHint =
    state === 'revoked' || state === 'deregistered' ? (
      chip.statusReason ? (
        <ChainText text={chip.statusReason} />
      ) : (
        'no reason given'
      )
    ) : chip.consecutiveMisses > 0 ? (
      `${streak.count}${streak.atLeast ? '+' : ''} missed in a row · ${chip.lastAnsweredAt > 0 ? `no answer since #${formatInt(chip.lastAnsweredAt)}` : 'never answered'}`
    ) : (
      'answering its slots'
    );

  return (
    <div className="page">
      <PageTitle kicker={kicker(<ChipStatusBadge chip={chip} />)} title={title} />
      <div className="stats">
        <Stat
          accent
          label="Status"
          testId="chip-state"
          value={<span className={`state-${state}`}>{STATE_TEXT[state]}</span>}
          hint={statusHint}
        />
        <Stat
          label="Power"
          value={
            <>
              {formatTflops(chip.power)}
              <span className="unit"> TFLOPS</span>
            </>
          }
          hint={<ChainText text={modelName(chip, models)} />}
        />
        <Stat
          label="Slots answered"
          value={formatInt(chip.slotsAnswered)}
          hint={`${formatInt(missed.total)}${missed.atLeast ? '+' : ''} missed${missed.unrecorded > 0 || missed.atLeast ? ' (not all recorded yet)' : ''}`}
        />
        <Stat
          label="Last answer"
          value={chip.lastAnsweredAt > 0 ? `#${formatInt(chip.lastAnsweredAt)}` : '—'}
          hint={
            chip.lastAnsweredAt > 0
              ? `${plural(Math.max(0, head - chip.lastAnsweredAt), 'block')} ago`
              : 'no answer yet'
          }
        />
      </div>

      <div className="chip-grid">
        <Card
          className="area-timeline"
          title="Uptime timeline"
          subtitle="Every challenge of the previous and the current epoch so far · point at a cell for its height and status"
          testId="timeline-card"
        >
          <UptimeTimeline chip={chip} epoch={epoch} head={head} reasons={reasons} />
          <p className="note">
            Each block challenges one class of chips, drawn from its beacon, so nobody knows the next
            challenge before its block exists (this chip is in class {chip.challengeClass}). A challenge is
            answered when the chip’s signature over the block’s challenge lands within{' '}
            {plural(epoch.answerWindowBlocks, 'block')}; {epoch.offlineAfterMisses} missed in a row and the
            chip is offline.
          </p>
        </Card>
        <Card title="Chip" testId="chip-facts" className="area-facts">
          <KV>
            <Row label="Owner">
              <AddrLink address={chip.owner} short={false} />
              <div className="kv-sub">
                <a href={href(paths.miner(chip.owner))}>miner view: all its chips, what to fix</a>
              </div>
            </Row>
            {chip.heartbeatOperator ? (
              <Row label="Heartbeat operator">
                <AddrLink address={chip.heartbeatOperator} short={false} />
                <div className="kv-sub">
                  sends this chip's heartbeats for the owner; rewards go to the owner
                </div>
              </Row>
            ) : null}
            <Row label="Vendor">
              <ChainText text={vendorName(chip.vendorId, vendors)} />
              <div className="kv-sub mono">
                <ChainText text={chip.vendorId} />
              </div>
            </Row>
            <Row label="Model">
              <ChainText text={modelName(chip, models)} />
              <div className="kv-sub mono">{chip.modelId}</div>
            </Row>
            <Row label="Profile">
              <ChainText className="profile" text={chip.profile} />
            </Row>
            <Row label="Power">{formatPower(chip.power)} (dense FP16)</Row>
            <Row label="Status">
              <span data-testid="chip-status-text">
                <StatusWord value={chip.status} known={CHIP_STATUSES} />
                {chip.statusReason ? (
                  <>
                    : <ChainText text={chip.statusReason} />
                  </>
                ) : (
                  ''
                )}
                {chip.status === 'active' ? (chip.online ? ', online' : ', OFFLINE') : ''}
                {chip.consecutiveMisses > 0
                  ? ` (${plural(chip.consecutiveMisses, 'missed slot')} in a row)`
                  : ''}
              </span>
            </Row>
            <Row label="Registered">
              block <BlockLink height={chip.registeredAt} />, slots from epoch {formatInt(chip.firstEpoch)}
            </Row>
            {chip.tpmClock ? (
              <Row label="TPM clock">
                <span data-testid="tpm-clock">
                  {formatInt(Number(chip.tpmClock.clock))} ms · resetCount {chip.tpmClock.resetCount} ·
                  restartCount {chip.tpmClock.restartCount}
                </span>
              </Row>
            ) : null}
            <Row label="Rewards earned">
              <Amount value={chip.rewardsEarned} />
            </Row>
            {chip.certSerials.length > 0 ? (
              <Row label="Certificate serials">
                <span className="serials">
                  {chip.certSerials.map((s) => (
                    <span key={s} className="mono">
                      {s}
                    </span>
                  ))}
                </span>
              </Row>
            ) : null}
            <Row label="Chip id">
              <FullHash value={chip.chipId} />
            </Row>
          </KV>
        </Card>
        <EventLog data={data} models={models} vendors={vendors} />
      </div>
      <ChipEarnings chipId={chip.chipId} />
      <ChipLeases chipId={chip.chipId} owner={chip.owner} />
    </div>
  );
}
