/** Display formatting. Amounts stay bigint base units (1 UNC = 10^18) until the last step. */

export const UNC_DECIMALS = 18;
const ONE_UNC = 10n ** 18n;

export function big(value: string | bigint | number): bigint {
  if (typeof value === 'bigint') return value;
  try {
    return BigInt(value);
  } catch {
    return 0n;
  }
}

/** "1.50" → "1.5", "2.00" → "2"; an integer string is left alone. */
function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

function groupDigits(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * "3,000,012.5" — whole UNC grouped, at most `maxFrac` decimals (cut, not rounded, so a balance is
 * never shown larger than it is). A non-zero amount that cuts to zero shows as "<0.0001".
 */
export function formatUnc(value: string | bigint, maxFrac = 4): string {
  const v = big(value);
  const negative = v < 0n;
  const abs = negative ? -v : v;
  const whole = abs / ONE_UNC;
  let frac = (abs % ONE_UNC).toString().padStart(UNC_DECIMALS, '0').slice(0, maxFrac).replace(/0+$/, '');
  if (maxFrac === 0 && whole === 0n && abs !== 0n) return negative ? '>-1' : '<1';
  if (whole === 0n && frac === '' && abs !== 0n)
    return `${negative ? '>-' : '<'}0.${'0'.repeat(Math.max(0, maxFrac - 1))}1`;
  if (maxFrac === 0) frac = '';
  return `${negative ? '-' : ''}${groupDigits(whole.toString())}${frac ? `.${frac}` : ''}`;
}

/** Every digit: for fees and exact amounts. */
export function formatUncExact(value: string | bigint): string {
  return formatUnc(value, UNC_DECIMALS);
}

/** "970M", "30M", "1.25K", "12.5" — for tiles and chart legends. */
export function formatUncCompact(value: string | bigint): string {
  const v = big(value);
  const whole = Number(v / ONE_UNC) + Number(v % ONE_UNC) / 1e18;
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (const [size, suffix] of units) {
    if (Math.abs(whole) >= size) {
      const n = whole / size;
      return `${trimZeros(n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2))}${suffix}`;
    }
  }
  return formatUnc(v, 2);
}

export function formatInt(n: number): string {
  return groupDigits(String(Math.trunc(n)));
}

export function shortHash(hash: string, head = 8, tail = 6): string {
  if (hash.length <= head + tail + 1) return hash;
  return `${hash.slice(0, head)}…${hash.slice(-tail)}`;
}

export function shortAddress(address: string): string {
  return shortHash(address, 10, 6);
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${trimZeros((ms / 1000).toFixed(ms < 10_000 ? 2 : 1))} s`;
  if (ms < 3_600_000) return `${trimZeros((ms / 60_000).toFixed(1))} min`;
  return `${trimZeros((ms / 3_600_000).toFixed(1))} h`;
}

export function timeAgo(ms: number, now: number): string {
  const d = Math.max(0, now - ms);
  if (d < 2000) return 'just now';
  if (d < 60_000) return `${Math.floor(d / 1000)} s ago`;
  if (d < 3_600_000) return `${Math.floor(d / 60_000)} min ago`;
  if (d < 86_400_000) return `${Math.floor(d / 3_600_000)} h ago`;
  return `${Math.floor(d / 86_400_000)} d ago`;
}

/** "2026-11-26 18:01:24 UTC": one format everywhere, independent of the viewer's locale. */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().replace('T', ' ').slice(0, 19)} UTC`;
}

/** part / whole as a JS number in [0, 1] (exact to 18 digits, so a tiny part is not shown as 0). */
export function fraction(part: bigint, whole: bigint): number {
  if (whole === 0n) return 0;
  return Number((part * 10n ** 18n) / whole) / 1e18;
}

export function formatPercent(f: number, digits = 2): string {
  if (f > 0 && f < 10 ** -digits / 100) return `<${(10 ** -digits).toFixed(digits)}%`;
  return `${trimZeros((f * 100).toFixed(digits))}%`;
}

/** "1 transaction", "3 transactions". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatInt(n)} ${n === 1 ? one : many}`;
}

/**
 * Characters that draw nothing, move the line or change the direction of the text around them:
 * controls (C0, DEL, C1), format characters (bidi embeddings, overrides, isolates and marks, the
 * zero-width ones, the soft hyphen, tag characters), the line and paragraph separators (a paragraph
 * separator restarts the bidi algorithm), lone surrogates, every default-ignorable code point
 * (Hangul fillers, variation selectors, the combining grapheme joiner, unassigned ones Unicode keeps
 * for more of the same) and the Braille blank. Anyone can put text on chain; with these in it,
 * "price 1000" after an override reads "0001 ecirp" backwards, and two addresses or names that
 * differ only by one of them look identical. Unicode properties, not a list: a list falls behind
 * the standard.
 */
const HIDDEN_CHAR = /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}\u2800]$/u;
/** What may carry an emoji presentation selector (U+FE0F) or text one (U+FE0E): an emoji. */
const EMOJI_BASE = /^\p{Emoji}$/u;
/** What a zero-width joiner may stand between in an emoji sequence (👩‍💻, 🏳️‍🌈, 👍🏽‍…). */
const ZWJ_LEFT = /^[\p{Extended_Pictographic}\p{Emoji_Modifier}]$/u;
const KEYCAP_BASE = /^[0-9#*]$/;
const ZWJ_RIGHT = /^\p{Extended_Pictographic}$/u;
/** Past the fourth combining mark on one letter, the marks stack over the lines above and below. */
const MAX_MARKS = 4;
const MARK = /^\p{M}$/u;
/**
 * The most code points of one grapheme cluster drawn without a line-break opportunity. A browser
 * never breaks a line inside a cluster (not even with overflow-wrap: anywhere), and a cluster has
 * no length limit: emoji joined by ZWJ, a skin tone repeated, Hangul leading jamo ("ᄀᄀᄀ…") are one
 * each, so 2,000 of them were one unbreakable line thousands of pixels wide over the page. The
 * longest emoji sequence is 10 code points, the longest real syllable fewer.
 */
const MAX_CLUSTER = 16;
const graphemes =
  typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;
/** How much of one piece of chain text is shown: a node can answer megabytes in one field. */
export const CHAIN_TEXT_MAX = 2000;

/** A piece of chain text as shown: text as is, or a hidden character shown as its code point. */
export type TextPart = { text: string } | { hidden: number } | { newline: true } | { wrap: true };

/** "U+202E": how a hidden code point is named on the page. */
export function codePointName(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Text from the chain or a node cut into what is drawn as is and what is shown as a code point (a
 * hidden character, a mark past the fourth on one letter), cut to about `max` characters, with
 * "…" at the end when cut. A variation selector right after an emoji and a zero-width joiner
 * between two emoji of a sequence are the emoji's own and drawn; alone, or next to anything else,
 * they are shown. `newlines`: a line feed (LF or CR LF) is a line break, not a code point (memos).
 */
export function visibleParts(text: string, max = CHAIN_TEXT_MAX, newlines = false): TextPart[] {
  // Each character shows as one or more, so what lies past `max` is never shown: not worked on.
  const clipped = text.length > max ? text.slice(0, max + 1) : text;
  const chars = Array.from(clipped);
  /** UTF-16 offsets where a grapheme cluster starts. */
  const clusterStarts = new Set<number>();
  if (graphemes) for (const g of graphemes.segment(clipped)) clusterStarts.add(g.index);
  let offset = 0;
  let clusterLen = 0;
  const parts: TextPart[] = [];
  let plain = '';
  let used = 0;
  let marks = 0;
  let lastDrawn = false;
  let cut = text.length > max;
  const flush = () => {
    if (plain) parts.push({ text: plain });
    plain = '';
  };
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    const cp = c.codePointAt(0) ?? 0;
    const clusterStart = !graphemes || clusterStarts.has(offset);
    offset += c.length;
    const prev = chars[i - 1] ?? '';
    const next = chars[i + 1] ?? '';
    marks = MARK.test(c) ? marks + 1 : 0;
    let drawn: boolean;
    if (cp === 0xfe0f || cp === 0xfe0e) {
      // A keycap base (a digit, # or *) draws nothing with a selector but a keycap after it: "10️00".
      drawn = KEYCAP_BASE.test(prev) ? next === '\u20E3' : EMOJI_BASE.test(prev);
    } else if (cp === 0x200d) {
      drawn = (ZWJ_LEFT.test(prev) || (prev === '\uFE0F' && lastDrawn)) && ZWJ_RIGHT.test(next);
    } else drawn = !HIDDEN_CHAR.test(c) && marks <= MAX_MARKS;
    lastDrawn = drawn;
    const isNewline = newlines && (c === '\n' || (c === '\r' && next === '\n'));
    // A shown code point takes the room of its name as visibleText writes it, "⟨U+XXXX⟩".
    const cost = isNewline ? 1 : drawn ? c.length : codePointName(cp).length + 2;
    if (used + cost > max) {
      cut = true;
      break;
    }
    used += cost;
    clusterLen = clusterStart ? 1 : clusterLen + 1;
    if (isNewline) {
      if (c === '\r') continue;
      flush();
      parts.push({ newline: true });
    } else if (drawn) {
      if (clusterLen > MAX_CLUSTER) {
        flush();
        parts.push({ wrap: true });
        clusterLen = 1;
      }
      plain += c;
    } else {
      flush();
      parts.push({ hidden: cp });
      // A marker is a box of its own: the line may break beside it.
      clusterLen = 0;
    }
  }
  if (cut) plain += '…';
  flush();
  return parts;
}

/**
 * Chain or node text as one string, for where only a string fits (a tooltip, an aria label): its
 * hidden characters as "⟨U+202E⟩". A string cannot mark them so that no text could look the same
 * ("⟨" is shown as a code point too, but look-alike brackets are many): the page shows chain text
 * through ChainText, whose code points are styled elements no text can draw.
 */
export function visibleText(text: string, max = CHAIN_TEXT_MAX): string {
  let out = visibleParts(text, max)
    .map((p) =>
      'text' in p
        ? p.text.replace(/\u27E8/g, `⟨${codePointName(0x27e8)}⟩`)
        : 'hidden' in p
          ? `⟨${codePointName(p.hidden)}⟩`
          : 'newline' in p
            ? '\n'
            : '',
    )
    .join('');
  if (out.length <= max + 1) return out;
  // Only a "⟨" shown as its code point makes it longer than visibleParts counted: cut again, never
  // half a code point ("⟨U+…", a lone high surrogate).
  out = out.slice(0, max);
  const open = out.lastIndexOf('⟨');
  if (open > out.lastIndexOf('⟩')) out = out.slice(0, open);
  if (/[\uD800-\uDBFF]$/.test(out)) out = out.slice(0, -1);
  return `${out}…`;
}
