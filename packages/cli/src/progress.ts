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
