/**
 * A minimal Prometheus registry rendering the text exposition format 0.0.4. Written in-house
 * because the node needs only counters, gauges and histograms, and a client library would be the
 * largest dependency in the tree for ~200 lines of formatting.
 *
 * Names carry their unit (`unc_block_interval_seconds`, `unc_txs_total`) as Prometheus naming
 * conventions require; the registry validates syntax but leaves naming style to the caller.
 */

export type Labels = Record<string, string | number | bigint | boolean>;

/** What GET /metrics must answer with for Prometheus to pick the 0.0.4 text parser. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Prometheus' own default buckets, for latencies measured in seconds. */
export const DEFAULT_SECONDS_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Kind = 'counter' | 'gauge' | 'histogram';

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

interface Series<T> {
  /** Already rendered `k="v",…` (without braces), sorted by label name. */
  labelText: string;
  state: T;
}

/**
 * Labels are normalised to a sorted, escaped string once; that string doubles as the series key so
 * that `{a:1,b:2}` and `{b:2,a:1}` land on the same series.
 */
function labelKey(labels: Labels | undefined, reserved?: string): string {
  if (!labels) return '';
  const names = Object.keys(labels).sort();
  const parts: string[] = [];
  for (const name of names) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new TypeError(`invalid label name: ${name}`);
    if (name === reserved) throw new TypeError(`label name ${name} is reserved`);
    parts.push(`${name}="${escapeLabelValue(String(labels[name]))}"`);
  }
  return parts.join(',');
}

function braces(labelText: string, extra?: string): string {
  const all = [labelText, extra].filter((s) => s).join(',');
  return all ? `{${all}}` : '';
}

abstract class Metric<T> {
  protected readonly series = new Map<string, Series<T>>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: Kind,
  ) {}

  protected abstract initial(): T;
  protected abstract renderSeries(s: Series<T>): string[];

  protected get(labels: Labels | undefined): Series<T> {
    const key = labelKey(labels, this.kind === 'histogram' ? 'le' : undefined);
    let s = this.series.get(key);
    if (!s) {
      s = { labelText: key, state: this.initial() };
      this.series.set(key, s);
    }
    return s;
  }

  /** Drops every series, e.g. when the label set it tracked (peers, chips) is gone. */
  reset(): void {
    this.series.clear();
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`];
    // An untouched metric still exports a zero so that rate()/increase() have a starting point.
    const all = this.series.size > 0 ? [...this.series.values()] : [{ labelText: '', state: this.initial() }];
    for (const s of all) lines.push(...this.renderSeries(s));
    return lines.join('\n');
  }
}

export class Counter extends Metric<{ value: number }> {
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }

  protected initial(): { value: number } {
    return { value: 0 };
  }

  inc(value = 1, labels?: Labels): void {
    // A decreasing counter would be read by Prometheus as a process restart.
    if (!(value >= 0)) throw new RangeError(`counter ${this.name} can only increase (got ${value})`);
    this.get(labels).state.value += value;
  }

  value(labels?: Labels): number {
    return this.series.get(labelKey(labels))?.state.value ?? 0;
  }

  protected renderSeries(s: Series<{ value: number }>): string[] {
    return [`${this.name}${braces(s.labelText)} ${formatValue(s.state.value)}`];
  }
}

export class Gauge extends Metric<{ value: number }> {
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }

  protected initial(): { value: number } {
    return { value: 0 };
  }

  set(value: number, labels?: Labels): void {
    this.get(labels).state.value = value;
  }

  inc(value = 1, labels?: Labels): void {
    this.get(labels).state.value += value;
  }

  dec(value = 1, labels?: Labels): void {
    this.get(labels).state.value -= value;
  }

  value(labels?: Labels): number {
    return this.series.get(labelKey(labels))?.state.value ?? 0;
  }

  protected renderSeries(s: Series<{ value: number }>): string[] {
    return [`${this.name}${braces(s.labelText)} ${formatValue(s.state.value)}`];
  }
}

interface HistogramState {
  /** Per-bucket (non-cumulative) counts; the last slot is the implicit +Inf bucket. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric<HistogramState> {
  readonly buckets: readonly number[];

  constructor(name: string, help: string, buckets: readonly number[]) {
    super(name, help, 'histogram');
    const finite = buckets.filter((b) => b !== Number.POSITIVE_INFINITY);
    if (finite.length === 0) throw new RangeError(`histogram ${name} needs at least one finite bucket`);
    for (let i = 0; i < finite.length; i++) {
      if (!Number.isFinite(finite[i]))
        throw new RangeError(`histogram ${name}: bucket ${finite[i]} is not finite`);
      if (i > 0 && finite[i]! <= finite[i - 1]!) {
        throw new RangeError(`histogram ${name}: buckets must be strictly increasing`);
      }
    }
    this.buckets = Object.freeze([...finite]);
  }

  protected initial(): HistogramState {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  observe(value: number, labels?: Labels): void {
    if (Number.isNaN(value)) throw new RangeError(`histogram ${this.name}: cannot observe NaN`);
    const s = this.get(labels).state;
    let i = this.buckets.findIndex((b) => value <= b);
    if (i === -1) i = this.buckets.length;
    s.counts[i]! += 1;
    s.sum += value;
    s.count += 1;
  }

  /** Starts a timer; calling the result observes the elapsed seconds. */
  startTimer(labels?: Labels): () => number {
    const start = process.hrtime.bigint();
    return () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      this.observe(seconds, labels);
      return seconds;
    };
  }

  protected renderSeries(s: Series<HistogramState>): string[] {
    const lines: string[] = [];
    let cumulative = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      cumulative += s.state.counts[i]!;
      const le = i < this.buckets.length ? formatValue(this.buckets[i]!) : '+Inf';
      lines.push(`${this.name}_bucket${braces(s.labelText, `le="${le}"`)} ${cumulative}`);
    }
    lines.push(`${this.name}_sum${braces(s.labelText)} ${formatValue(s.state.sum)}`);
    lines.push(`${this.name}_count${braces(s.labelText)} ${s.state.count}`);
    return lines;
  }
}

type AnyMetric = Counter | Gauge | Histogram;

export class Registry {
  private readonly metrics = new Map<string, AnyMetric>();
  private readonly collectors: Array<() => void> = [];

  counter(name: string, help: string): Counter {
    return this.register(name, 'counter', () => new Counter(name, help)) as Counter;
  }

  gauge(name: string, help: string): Gauge {
    return this.register(name, 'gauge', () => new Gauge(name, help)) as Gauge;
  }

  histogram(name: string, help: string, buckets: readonly number[] = DEFAULT_SECONDS_BUCKETS): Histogram {
    const h = this.register(name, 'histogram', () => new Histogram(name, help, buckets)) as Histogram;
    const wanted = buckets.filter((b) => b !== Number.POSITIVE_INFINITY);
    if (wanted.length !== h.buckets.length || wanted.some((b, i) => b !== h.buckets[i])) {
      throw new TypeError(`histogram ${name} already registered with different buckets`);
    }
    return h;
  }

  /**
   * Runs `fn` before every render, for gauges that are cheaper to read at scrape time (mempool
   * size, peer count) than to keep updated on every change.
   */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const fn of this.collectors) fn();
    const blocks = [...this.metrics.values()].map((m) => m.render());
    return blocks.length ? `${blocks.join('\n')}\n` : '';
  }

  /**
   * Registering the same name twice returns the existing metric, so that independent modules can
   * share one without passing it around; a clash of kinds is a programming error.
   */
  private register(name: string, kind: Kind, make: () => AnyMetric): AnyMetric {
    if (!METRIC_NAME.test(name)) throw new TypeError(`invalid metric name: ${name}`);
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.kind !== kind)
        throw new TypeError(`metric ${name} already registered as ${existing.kind}`);
      return existing;
    }
    // Histogram series names would collide with a plain metric called `<name>_sum` etc.
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const clash = kind === 'histogram' ? this.metrics.get(`${name}${suffix}`) : undefined;
      const base = name.endsWith(suffix) ? this.metrics.get(name.slice(0, -suffix.length)) : undefined;
      if (clash || base?.kind === 'histogram')
        throw new TypeError(`metric ${name} clashes with a histogram series`);
    }
    const metric = make();
    this.metrics.set(name, metric);
    return metric;
  }
}
