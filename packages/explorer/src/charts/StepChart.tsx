/**
 * A step area chart in plain SVG: one value per integer x (block heights), drawn as steps because
 * the value holds until the next block changes it. Vertical markers (epoch starts), a y axis with
 * rounded ticks, and a tooltip that follows the pointer or the arrow keys.
 */
import { type ReactNode, useState } from 'react';
import { niceMax } from './BarChart';
import { ChartTip, walkKeys, YGrid } from './parts';
import { useWidth } from './useWidth';

export interface StepPoint {
  x: number;
  value: number;
  tip: ReactNode;
}

const PAD_LEFT = 48;
const PAD_RIGHT = 10;
const PAD_TOP = 12;
const PAD_BOTTOM = 22;

export function StepChart({
  points,
  height = 170,
  format,
  xLabel,
  markers = [],
  label,
  testId,
}: {
  points: StepPoint[];
  height?: number;
  format: (v: number) => string;
  xLabel: (x: number) => string;
  markers?: { x: number; label: string }[];
  label: string;
  testId?: string;
}) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hover, setHover] = useState<number | null>(null);
  const n = points.length;
  const innerW = Math.max(0, width - PAD_LEFT - PAD_RIGHT);
  const innerH = height - PAD_TOP - PAD_BOTTOM;
  const max = niceMax(Math.max(0, ...points.map((p) => p.value)) * 1.1, false);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  const x0 = points[0]?.x ?? 0;
  const span = Math.max(1, n);
  const step = innerW / span;
  const xAt = (x: number) => PAD_LEFT + (x - x0) * step;
  const y = (v: number) => PAD_TOP + innerH - (v / max) * innerH;

  let line = '';
  for (const [i, p] of points.entries()) {
    const left = xAt(p.x);
    line += i === 0 ? `M${left},${y(p.value)}` : `V${y(p.value)}`;
    line += `H${left + step}`;
  }
  const area = n > 0 ? `${line}V${y(0)}H${xAt(x0)}Z` : '';

  function indexAt(clientX: number, rect: DOMRect): number | null {
    const x = clientX - rect.left - PAD_LEFT;
    if (x < 0 || x >= innerW || n === 0) return null;
    return Math.min(n - 1, Math.floor(x / step));
  }
  const hovered = hover === null ? null : points[hover];
  const labels = Math.max(2, Math.floor(innerW / 80));
  const labelEvery = Math.max(1, Math.ceil(n / labels));

  return (
    <div className="chart" ref={ref} data-testid={testId}>
      {width > 0 ? (
        <svg
          width={width}
          height={height}
          role="img"
          aria-label={label}
          onPointerMove={(e) => setHover(indexAt(e.clientX, e.currentTarget.getBoundingClientRect()))}
          onPointerLeave={() => setHover(null)}
          // biome-ignore lint/a11y/noNoninteractiveTabindex: arrows walk the points with the tooltip
          tabIndex={0}
          onKeyDown={walkKeys(n, setHover)}
          onBlur={() => setHover(null)}
        >
          <title>{label}</title>
          <YGrid ticks={ticks} y={y} format={format} left={PAD_LEFT} right={width - PAD_RIGHT} />
          {markers
            .filter((m) => m.x > x0 && m.x <= x0 + n - 1)
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
          {hovered && hover !== null ? (
            <line
              className="hover-line"
              x1={xAt(hovered.x) + step / 2}
              x2={xAt(hovered.x) + step / 2}
              y1={PAD_TOP}
              y2={PAD_TOP + innerH}
            />
          ) : null}
          {points.map((p, i) =>
            i % labelEvery === 0 || i === n - 1 ? (
              <text
                key={`l${p.x}`}
                className="axis"
                x={i === n - 1 ? xAt(p.x) + step : xAt(p.x)}
                y={height - 6}
                textAnchor={i === n - 1 ? 'end' : i === 0 ? 'start' : 'middle'}
              >
                {i !== n - 1 && n - 1 - i < labelEvery ? '' : xLabel(p.x)}
              </text>
            ) : null,
          )}
        </svg>
      ) : (
        <div style={{ height }} />
      )}
      {hovered && hover !== null ? (
        <ChartTip x={xAt(hovered.x) + step / 2} y={y(hovered.value)} width={width} margin={80}>
          {hovered.tip}
        </ChartTip>
      ) : null}
    </div>
  );
}
