/**
 * A spinner for long work, on stderr and only when stderr is a terminal: pipes, files and
 * `--output json` consumers see nothing but the result.
 */
const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export interface Spinner {
  update(text: string): void;
  done(text?: string): void;
}

export function spinner(text: string): Spinner {
  const tty = process.stderr.isTTY === true;
  let current = text;
  let frame = 0;
  const draw = () => process.stderr.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${current}`);
  const timer = tty ? setInterval(draw, 80) : null;
  if (tty) draw();
  return {
    update(next) {
      current = next;
    },
    done(final) {
      if (timer) clearInterval(timer);
      if (tty) process.stderr.write(`\r\x1b[2K${final ? `${final}\n` : ''}`);
    },
  };
}

export interface ProgressBar {
  /** `done` of `total` units; `etaSeconds` null while unknown. */
  update(done: number, total: number, etaSeconds: number | null, detail?: string): void;
  done(text?: string): void;
}

function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return 'ETA ?';
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `ETA ${s}s`;
  if (s < 3600) return `ETA ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `ETA ${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One line of a progress bar, e.g. `syncing [██████░░░░] 61% 1,220/2,000 ETA 14s`. */
export function renderProgress(
  label: string,
  done: number,
  total: number,
  etaSeconds: number | null,
  width = 24,
): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.round(fraction * width);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `${label} [${bar}] ${pct} ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${formatEta(etaSeconds)}`;
}

/**
 * A progress bar on stderr. On a terminal it redraws one line; elsewhere (logs, CI) it prints a
 * plain line at most every `plainEveryMs`, so long work still shows it is moving, without escape
 * codes.
 */
export function progressBar(label: string, opts: { plainEveryMs?: number } = {}): ProgressBar {
  const tty = process.stderr.isTTY === true;
  const every = opts.plainEveryMs ?? 5_000;
  let lastPlain = 0;
  return {
    update(done, total, eta, detail) {
      const line = `${renderProgress(label, done, total, eta)}${detail ? ` ${detail}` : ''}`;
      if (tty) process.stderr.write(`\r\x1b[2K${line}`);
      else if (Date.now() - lastPlain >= every) {
        lastPlain = Date.now();
        process.stderr.write(`${line}\n`);
      }
    },
    done(final) {
      if (tty) process.stderr.write(`\r\x1b[2K${final ? `${final}\n` : ''}`);
      else if (final) process.stderr.write(`${final}\n`);
    },
  };
}
