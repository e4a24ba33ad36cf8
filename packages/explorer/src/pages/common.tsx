/** How pages show loading and errors, the same way everywhere. */
import type { ReactNode } from 'react';
import { AlertIcon } from '../components/icons';
import { Card, ChainText, Skeleton } from '../components/ui';
import { NodeUnreachableError, RpcClientError } from '../sdk';

export function isNotFound(err: unknown): boolean {
  return err instanceof RpcClientError && (err.reason === 'NOT_FOUND' || /not found/i.test(err.message));
}

export function LoadingCard({ lines = 5 }: { lines?: number }) {
  return (
    <Card>
      <div className="skeleton-stack">
        {Array.from({ length: lines }, (_, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: placeholders
          <Skeleton key={i} height={18} width={`${90 - ((i * 13) % 40)}%`} />
        ))}
      </div>
    </Card>
  );
}

export function ProblemCard({
  title,
  children,
  testId,
}: {
  title: string;
  children?: ReactNode;
  testId?: string;
}) {
  return (
    <Card className="problem" testId={testId}>
      <div className="problem-body">
        <AlertIcon size={22} />
        <div>
          <h2>{title}</h2>
          {children ? <div className="muted">{children}</div> : null}
        </div>
      </div>
    </Card>
  );
}

/** An error from the node, as a card: unreachable (the banner explains; we retry), refused, or other. */
export function RpcErrorCard({ error, what }: { error: unknown; what: string }) {
  if (error instanceof NodeUnreachableError) {
    return (
      <ProblemCard title={`Waiting for the node to load this ${what}`}>
        The node cannot be reached right now; this page reloads by itself when it is back.
      </ProblemCard>
    );
  }
  if (error instanceof RpcClientError) {
    return (
      <ProblemCard title={`The node could not return this ${what}`}>
        <ChainText text={error.message} />
        {error.reason ? (
          <span className="mono">
            {' '}
            (<ChainText text={error.reason} />)
          </span>
        ) : null}
      </ProblemCard>
    );
  }
  return (
    <ProblemCard title={`Something went wrong loading this ${what}`}>
      <ChainText text={String(error)} />
    </ProblemCard>
  );
}
