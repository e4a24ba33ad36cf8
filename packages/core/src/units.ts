import { UncError } from './errors.js';

/** 1 UNC = 10^18 base units. Every amount in the protocol is a bigint of base units. */
export const UNC_DECIMALS = 18;
export const ONE_UNC = 10n ** 18n;

const AMOUNT_RE = /^(\d+)(?:\.(\d+))?$/;

/** Parses a decimal UNC amount ("12.5", "0.000000000000000001") into base units, exactly. */
export function parseUnc(text: string): bigint {
  const trimmed = text.trim();
  const m = AMOUNT_RE.exec(trimmed);
  if (!m)
    throw new UncError('BAD_AMOUNT', `invalid amount "${text}": expected a decimal number of UNC, e.g. 12.5`);
  const whole = m[1]!;
  const frac = m[2] ?? '';
  if (frac.length > UNC_DECIMALS) {
    throw new UncError('BAD_AMOUNT', `invalid amount "${text}": at most ${UNC_DECIMALS} decimal places`);
  }
  return BigInt(whole) * ONE_UNC + BigInt(frac.padEnd(UNC_DECIMALS, '0') || '0');
}

/** Formats base units as a decimal UNC string without trailing zeros ("12.5", "0", "1"). */
export function formatUnc(amount: bigint): string {
  const negative = amount < 0n;
  const abs = negative ? -amount : amount;
  const whole = abs / ONE_UNC;
  const frac = (abs % ONE_UNC).toString().padStart(UNC_DECIMALS, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

/** Parses a non-negative integer of base units given as a decimal string (RPC and JSON files). */
export function parseBaseUnits(text: string, what = 'amount'): bigint {
  if (typeof text !== 'string' || !/^\d{1,40}$/.test(text)) {
    throw new UncError(
      'BAD_AMOUNT',
      `invalid ${what} "${String(text)}": expected a decimal integer of base units`,
    );
  }
  return BigInt(text);
}
