/**
 * A step chart in plain SVG over samples at arbitrary heights (a sample's value holds until the
 * next one): an area for the main series, an optional dashed line for a reference series (e.g.
 * registered next to online), vertical markers, a y axis with rounded ticks, and a tooltip that
 * follows the pointer or the arrow keys. More samples than pixels are thinned to one per pixel.
 */
import { type ReactNode, useState } from 'react';
import { niceMax } from './BarChart';
import { ChartTip, walkKeys, YGrid } from './parts';
import { useWidth } from './useWidth';

export interface SeriesPoint {
  x: number;
  value: number;
  /** The reference line's value at x (drawn dashed). */
  ref?: number;
  tip: ReactNode;
}

const PAD_LEFT = 48;
const PAD_RIGHT = 10;
const PAD_TOP = 12;
const PAD_BOTTOM = 22;

/** The last point of every pixel column, so a long series draws in O(width). */
function thin(points: SeriesPoint[], x0: number, x1: number, columns: number): SeriesPoint[] {
  if (points.length <= columns || columns <= 0) return points;
  const out: SeriesPoint[] = [];
  let lastCol = -1;
  for (const p of points) {
    const col = Math.floor(((p.x - x0) / Math.max(1, x1 - x0)) * columns);
    if (col === lastCol) out[out.length - 1] = p;
    else out.push(p);
    lastCol = col;
  }
  return out;
}

export function SeriesChart({
  points: all,
  height = 150,
  format,
  xLabel,
  markers = [],
  label,
  testId,
  integer = false,
  tone = 'accent',
}: {
  /** Sorted by x. */
  points: SeriesPoint[];
  height?: number;
  format: (v: number) => string;
  xLabel: (x: number) => string;
  markers?: { x: number; label: string }[];
  label: string;
  testId?: string;
  integer?: boolean;
  tone?: 'accent' | 'violet';
}) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hover, setHover] = useState<number | null>(null);
  const innerW = Math.max(0, width - PAD_LEFT - PAD_RIGHT);
  const innerH = height - PAD_TOP - PAD_BOTTOM;
  const x0 = all[0]?.x ?? 0;
  // The last sample holds for one more step, so a single sample still has a width.
  const x1 = Math.max(x0 + 1, (all[all.length - 1]?.x ?? 0) + 1);
  const points = thin(all, x0, x1, Math.floor(innerW));
  const n = points.length;
  const top = Math.max(0, ...points.map((p) => Math.max(p.value, p.ref ?? 0)));
  const max = niceMax(integer ? top : top * 1.1, integer);
  const ticks = (integer && max <= 4 ? [0, 1, 2, 3, 4] : [0, 0.25, 0.5, 0.75, 1].map((f) => f * max)).filter(
    (t) => t <= max,
  );
  const xAt = (x: number) => PAD_LEFT + ((x - x0) / (x1 - x0)) * innerW;
  const y = (v: number) => PAD_TOP + innerH - (v / max) * innerH;

  let line = '';
  let refLine = '';
  for (const [i, p] of points.entries()) {
    const left = xAt(p.x);
    const right = xAt(points[i + 1]?.x ?? x1);
    line += i === 0 ? `M${left},${y(p.value)}` : `V${y(p.value)}`;
    line += `H${right}`;
    if (p.ref !== undefined) {
      refLine += i === 0 || points[i - 1]?.ref === undefined ? `M${left},${y(p.ref)}` : `V${y(p.ref)}`;
      refLine += `H${right}`;
    }
  }
  const area = n > 0 ? `${line}V${y(0)}H${xAt(x0)}Z` : '';

  function indexAt(clientX: number, rect: DOMRect): number | null {
    const px = clientX - rect.left;
    if (px < PAD_LEFT || px >= PAD_LEFT + innerW || n === 0) return null;
    const x = x0 + ((px - PAD_LEFT) / innerW) * (x1 - x0);
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (points[mid]!.x <= x) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  const hovered = hover === null ? null : points[hover];
  const hoverX = hovered && hover !== null ? (xAt(hovered.x) + xAt(points[hover + 1]?.x ?? x1)) / 2 : 0;
  const labels = Math.max(2, Math.floor(innerW / 90));
  const xTicks =
    n > 0 ? Array.from({ length: labels + 1 }, (_, i) => Math.round(x0 + ((x1 - 1 - x0) * i) / labels)) : [];

  return (
    <div className={`chart series-${tone}`} ref={ref} data-testid={testId} data-points={all.length}>
      {width > 0 ? (
        <svg
          width={width}
          height={height}
          role="img"
          aria-label={label}
          onPointerMove={(e) => setHover(indexAt(e.clientX, e.currentTarget.getBoundingClientRect()))}
          onPointerLeave={() => setHover(null)}
          // biome-ignore lint/a11y/noNoninteractiveTabindex: arrows walk the samples with the tooltip
          tabIndex={0}
          onKeyDown={walkKeys(n, setHover)}
          onBlur={() => setHover(null)}
        >
          <title>{label}</title>
          <YGrid ticks={ticks} y={y} format={format} left={PAD_LEFT} right={width - PAD_RIGHT} />
          {markers
            .filter((m) => m.x > x0 && m.x < x1)
            .map((m) => (
              <g key={m.x}>
                <line className="marker" x1={xAt(m.x)} x2={xAt(m.x)} y1={PAD_TOP} y2={PAD_TOP + innerH} />
                <text className="marker-label" x={xAt(m.x) + 5} y={PAD_TOP + 10}>
                  {m.label}
                </text>
              </g>
            ))}
          <path className="step-area" d={area} />
          <path className="step-line" d={line} />
          {refLine ? <path className="ref-line" d={refLine} /> : null}
          {hovered ? (
            <line className="hover-line" x1={hoverX} x2={hoverX} y1={PAD_TOP} y2={PAD_TOP + innerH} />
          ) : null}
          {[...new Set(xTicks)].map((x, i, list) => (
            <text
              key={`l${x}`}
              className="axis"
              x={i === list.length - 1 ? xAt(x1) : i === 0 ? xAt(x0) : xAt(x)}
              y={height - 6}
              textAnchor={i === list.length - 1 ? 'end' : i === 0 ? 'start' : 'middle'}
            >
              {xLabel(x)}
            </text>
          ))}
        </svg>
      ) : (
        <div style={{ height }} />
      )}
      {hovered ? (
        <ChartTip x={hoverX} y={y(hovered.value)} width={width} margin={80}>
          {hovered.tip}
        </ChartTip>
      ) : null}
    </div>
  );
}
