/** A donut chart in plain SVG with a legend; values are fractions of the whole (they should sum to ≤ 1). */
import type { ReactNode } from 'react';
import { formatPercent } from '../format';

export interface Segment {
  label: string;
  fraction: number;
  color: string;
  value: ReactNode;
  hint?: ReactNode;
}

export function Donut({
  segments,
  size = 188,
  thickness = 22,
  center,
  label,
}: {
  segments: Segment[];
  size?: number;
  thickness?: number;
  center: { value: ReactNode; label: ReactNode };
  label: string;
}) {
  const r = (size - thickness) / 2;
  const c = 2 * Math.PI * r;
  let offset = 0;
  const gap = segments.filter((s) => s.fraction > 0).length > 1 ? 2 : 0;
  return (
    <div className="donut-wrap">
      <div className="donut" style={{ width: size, height: size }}>
        <svg width={size} height={size} viewBox={`0 0 ${size} ${size}`} role="img" aria-label={label}>
          <title>{label}</title>
          <circle
            className="donut-track"
            cx={size / 2}
            cy={size / 2}
            r={r}
            strokeWidth={thickness}
            fill="none"
          />
          <g transform={`rotate(-90 ${size / 2} ${size / 2})`}>
            {segments.map((s) => {
              if (s.fraction <= 0) return null;
              // A sliver too thin to see still gets a visible tick, so no segment silently vanishes.
              const len = Math.max(3, s.fraction * c - gap);
              const el = (
                <circle
                  key={s.label}
                  cx={size / 2}
                  cy={size / 2}
                  r={r}
                  fill="none"
                  stroke={s.color}
                  strokeWidth={thickness}
                  strokeDasharray={`${len} ${c - len}`}
                  strokeDashoffset={-offset}
                >
                  <title>{`${s.label}: ${formatPercent(s.fraction)}`}</title>
                </circle>
              );
              offset += s.fraction * c;
              return el;
            })}
          </g>
        </svg>
        <div className="donut-center">
          <div className="donut-value">{center.value}</div>
          <div className="donut-label">{center.label}</div>
        </div>
      </div>
      <ul className="legend">
        {segments.map((s) => (
          <li key={s.label}>
            <span className="swatch" style={{ background: s.color }} />
            <span className="legend-label">
              {s.label}
              {s.hint ? <span className="legend-hint">{s.hint}</span> : null}
            </span>
            <span className="legend-value">
              {s.value}
              <span className="legend-pct">{formatPercent(s.fraction)}</span>
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}
