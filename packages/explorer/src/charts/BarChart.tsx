/**
 * A bar chart in plain SVG: one bar per item (oldest left), a y axis with rounded ticks, an optional
 * dashed target line, a tooltip that follows the pointer, and a click-through per bar.
 */
import { type ReactNode, useState } from 'react';
import { navigate } from '../router';
import { ChartTip, walkKeys, YGrid } from './parts';
import { useWidth } from './useWidth';

export interface Bar {
  key: string | number;
  value: number;
  /** Tooltip lines. */
  tip: ReactNode;
  /** Explorer path opened on click. */
  to?: string;
  /** Drawn in the warning colour (e.g. a block far slower than the target). */
  warn?: boolean;
}

const PAD_LEFT = 44;
const PAD_RIGHT = 8;
const PAD_TOP = 10;
const PAD_BOTTOM = 22;

/** 1, 2, 2.5 or 5 × 10^n just above `max`, so the ticks read well (whole ticks for counts). */
export function niceMax(max: number, integer: boolean): number {
  if (integer) {
    if (max <= 4) return 4;
    const exp = 10 ** Math.floor(Math.log10(max));
    for (const m of [1, 2, 4, 5, 8, 10]) if (m * exp >= max && (m * exp) % 4 === 0) return m * exp;
    return Math.ceil(max / 4) * 4;
  }
  if (max <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= max) return m * exp;
  return 10 * exp;
}

export function BarChart({
  bars,
  height = 180,
  format,
  xLabel,
  target,
  tone = 'accent',
  label,
  testId,
  integer = false,
}: {
  bars: Bar[];
  height?: number;
  format: (v: number) => string;
  xLabel: (key: Bar['key']) => string;
  target?: { value: number; label: string };
  tone?: 'accent' | 'violet';
  label: string;
  testId?: string;
  /** The values are counts: ticks on whole numbers only. */
  integer?: boolean;
}) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hover, setHover] = useState<number | null>(null);
  const innerW = Math.max(0, width - PAD_LEFT - PAD_RIGHT);
  const innerH = height - PAD_TOP - PAD_BOTTOM;
  const max = niceMax(
    Math.max(0, ...bars.map((b) => b.value), target?.value ?? 0) * (integer ? 1 : 1.08),
    integer,
  );
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  const n = bars.length;
  const slot = n > 0 ? innerW / n : 0;
  const gap = slot > 6 ? Math.min(slot * 0.28, 6) : slot > 3 ? 1 : 0;
  const y = (v: number) => PAD_TOP + innerH - (v / max) * innerH;

  function indexAt(clientX: number, rect: DOMRect): number | null {
    const x = clientX - rect.left - PAD_LEFT;
    if (x < 0 || x >= innerW || n === 0) return null;
    return Math.min(n - 1, Math.floor(x / slot));
  }

  const hovered = hover === null ? null : bars[hover];
  const labelEvery = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(innerW / 70))));

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
          onClick={(e) => {
            const i = indexAt(e.clientX, e.currentTarget.getBoundingClientRect());
            const to = i === null ? undefined : bars[i]?.to;
            if (to) navigate(to);
          }}
          // Keyboard: arrows walk the bars (with the tooltip), Enter opens the one shown.
          // biome-ignore lint/a11y/noNoninteractiveTabindex: the chart is a control (arrows, Enter), not only a picture
          tabIndex={0}
          onKeyDown={walkKeys(n, setHover, (e) => {
            if (e.key === 'Enter' && hover !== null && bars[hover]?.to) navigate(bars[hover]!.to!);
          })}
          onBlur={() => setHover(null)}
          style={{ cursor: hovered?.to ? 'pointer' : 'default' }}
        >
          <title>{label}</title>
          <YGrid ticks={ticks} y={y} format={format} left={PAD_LEFT} right={width - PAD_RIGHT} />
          {bars.map((b, i) => {
            const h = Math.max(b.value > 0 ? 1.5 : 0, (b.value / max) * innerH);
            return (
              <rect
                key={b.key}
                className={`bar bar-${b.warn ? 'warn' : tone} ${hover === i ? 'bar-hover' : ''}`}
                x={PAD_LEFT + i * slot + gap / 2}
                y={PAD_TOP + innerH - h}
                width={Math.max(0.5, slot - gap)}
                height={h}
                rx={Math.min(2, (slot - gap) / 3)}
              />
            );
          })}
          {target ? (
            <g>
              <line
                className="target"
                x1={PAD_LEFT}
                x2={width - PAD_RIGHT}
                y1={y(target.value)}
                y2={y(target.value)}
              />
              <text
                className="target-label"
                x={width - PAD_RIGHT - 4}
                y={y(target.value) - 5}
                textAnchor="end"
              >
                {target.label}
              </text>
            </g>
          ) : null}
          {bars.map((b, i) =>
            i % labelEvery === 0 || i === n - 1 ? (
              <text
                key={`l${b.key}`}
                className="axis"
                x={PAD_LEFT + i * slot + slot / 2}
                y={height - 6}
                textAnchor={i === n - 1 ? 'end' : i === 0 ? 'start' : 'middle'}
              >
                {i !== n - 1 && n - 1 - i < labelEvery ? '' : xLabel(b.key)}
              </text>
            ) : null,
          )}
        </svg>
      ) : (
        <div style={{ height }} />
      )}
      {hovered && hover !== null ? (
        <ChartTip x={PAD_LEFT + hover * slot + slot / 2} y={y(hovered.value)} width={width} margin={70}>
          {hovered.tip}
        </ChartTip>
      ) : null}
    </div>
  );
}
