/** A horizontal 100% bar split into labelled parts (fee split, supply sources, mining progress). */
import type { ReactNode } from 'react';
import { formatPercent } from '../format';

export interface Part {
  label: string;
  fraction: number;
  color: string;
  value?: ReactNode;
}

export function SplitBar({
  parts,
  height = 12,
  showLegend = true,
}: {
  parts: Part[];
  height?: number;
  showLegend?: boolean;
}) {
  return (
    <div className="splitbar">
      <div className="splitbar-track" style={{ height }}>
        {parts.map((p) =>
          p.fraction > 0 ? (
            <div
              key={p.label}
              className="splitbar-part"
              style={{ width: `${Math.max(p.fraction * 100, 0.6)}%`, background: p.color }}
              title={`${p.label}: ${formatPercent(p.fraction)}`}
            />
          ) : null,
        )}
      </div>
      {showLegend ? (
        <ul className="splitbar-legend">
          {parts.map((p) => (
            <li key={p.label}>
              <span className="swatch" style={{ background: p.color }} />
              <span className="legend-label">{p.label}</span>
              {p.value !== undefined ? <span className="legend-value">{p.value}</span> : null}
              <span className="legend-pct">{formatPercent(p.fraction)}</span>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
