/** All blocks, 25 a page, newest first. Without a starting height the first page follows the head live. */
import { ChevronLeftIcon, ChevronRightIcon } from '../components/icons';
import { BlocksTable } from '../components/tables';
import { Card, PageTitle } from '../components/ui';
import { formatInt } from '../format';
import { useNode, useNow, useRpc } from '../node/context';
import { href, type PageProps, paths } from '../router';
import type { BlockJson } from '../sdk';
import { LoadingCard, RpcErrorCard } from './common';
import { LiveTag } from './Overview';

const PAGE = 25;

export function BlocksPage({ params }: PageProps) {
  const node = useNode();
  const now = useNow(1000);
  const head = node.status?.height;
  const fromParam = params.from !== undefined && /^\d+$/.test(params.from) ? Number(params.from) : undefined;
  const live = fromParam === undefined || (head !== undefined && fromParam >= head);
  const from = live ? head : fromParam;
  const paged = useRpc<BlockJson[]>(`blocks:${live ? 'live' : from}`, (c) =>
    live || from === undefined ? Promise.resolve([]) : c.getBlocks(from, Math.min(PAGE, from + 1)),
  );
  const blocks = live ? node.blocks.slice(0, PAGE) : (paged.data ?? []);
  const top = blocks[0]?.height ?? from ?? 0;
  const bottom = blocks[blocks.length - 1]?.height ?? top;

  return (
    <div className="page">
      <PageTitle
        kicker={live ? <LiveTag live={node.live} conn={node.conn} why={node.liveWhy} /> : 'History'}
        title="Blocks"
      >
        <div className="pager">
          <a
            className={`btn btn-ghost ${live ? 'disabled' : ''}`}
            href={
              live
                ? undefined
                : href(head !== undefined && top + PAGE >= head ? paths.blocks() : paths.blocks(top + PAGE))
            }
            aria-disabled={live}
          >
            <ChevronLeftIcon size={16} /> Newer
          </a>
          <a
            className={`btn btn-ghost ${bottom <= 0 ? 'disabled' : ''}`}
            href={bottom > 0 ? href(paths.blocks(bottom - 1)) : undefined}
            aria-disabled={bottom <= 0}
          >
            Older <ChevronRightIcon size={16} />
          </a>
        </div>
      </PageTitle>
      <Card
        subtitle={
          blocks.length > 0
            ? `Blocks #${formatInt(top)} to #${formatInt(bottom)}${head !== undefined ? ` of ${formatInt(head + 1)}` : ''}`
            : undefined
        }
      >
        {!live && paged.error ? (
          <RpcErrorCard error={paged.error} what="page of blocks" />
        ) : blocks.length === 0 ? (
          <LoadingCard lines={10} />
        ) : (
          <BlocksTable blocks={blocks} now={now} showTime testId="blocks-table" />
        )}
      </Card>
    </div>
  );
}
