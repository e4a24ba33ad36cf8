/** What every explorer chart draws and handles the same way: the y grid, the keyboard, the tooltip. */
import type { Dispatch, KeyboardEvent, ReactNode, SetStateAction } from 'react';

/** Horizontal grid lines with their value labels, left of the plot. */
export function YGrid({
  ticks,
  y,
  format,
  left,
  right,
}: {
  ticks: number[];
  y: (v: number) => number;
  format: (v: number) => string;
  /** x of the plot's left and right edges. */
  left: number;
  right: number;
}) {
  return (
    <>
      {ticks.map((t) => (
        <g key={t}>
          <line className="grid" x1={left} x2={right} y1={y(t)} y2={y(t)} />
          <text className="axis" x={left - 8} y={y(t)} dy="0.32em" textAnchor="end">
            {format(t)}
          </text>
        </g>
      ))}
    </>
  );
}

/**
 * Arrow keys walk the `n` points (with the tooltip), Escape hides it; `extra` sees every other key
 * (e.g. Enter to open the point shown).
 */
export function walkKeys(
  n: number,
  setHover: Dispatch<SetStateAction<number | null>>,
  extra?: (e: KeyboardEvent) => void,
): (e: KeyboardEvent) => void {
  return (e) => {
    if (n === 0) return;
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      e.preventDefault();
      const d = e.key === 'ArrowRight' ? 1 : -1;
      setHover((h) => Math.min(n - 1, Math.max(0, (h ?? (d > 0 ? -1 : n)) + d)));
    } else if (e.key === 'Escape') setHover(null);
    else extra?.(e);
  };
}

/** The tooltip above a point at (x, y), kept `margin` px inside the chart's width. */
export function ChartTip({
  x,
  y,
  width,
  margin,
  children,
}: {
  x: number;
  y: number;
  width: number;
  margin: number;
  children: ReactNode;
}) {
  return (
    <div
      className="chart-tip"
      style={{ left: Math.min(Math.max(x, margin), width - margin), top: Math.max(0, y - 8) }}
    >
      {children}
    </div>
  );
}
