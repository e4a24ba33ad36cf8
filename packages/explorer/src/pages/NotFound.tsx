import { PageTitle } from '../components/ui';
import { href, paths } from '../router';
import { ProblemCard } from './common';

export function NotFoundPage() {
  return (
    <div className="page">
      <PageTitle title="Page not found" />
      <ProblemCard title="There is no such page in the explorer">
        <a href={href(paths.overview())}>Back to the overview</a>
      </ProblemCard>
    </div>
  );
}
