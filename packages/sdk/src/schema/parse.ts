/**
 * Turning the `params` of a JSON-RPC request into a method's checked, decoded parameters. Three
 * spellings are accepted, as they always were: positional (`[a, b]`, in the schema's order), named
 * (`{"a": …}`), and one object in an array (`[{"a": …}]`). Unknown names and surplus positions are
 * refused rather than ignored: a misspelt optional parameter would otherwise silently take its
 * default.
 */
import * as v from 'valibot';
import type { ParamEntries, ParamsOutputOf } from './methods.js';

export type ParamsOutcome<T> = { ok: true; value: T } | { ok: false; field: string | null; message: string };

const isPlainObject = (x: unknown): x is Record<string, unknown> =>
  x !== null && typeof x === 'object' && !Array.isArray(x);

export function parseParams<E extends ParamEntries>(
  entries: E,
  raw: unknown,
  check?: { test: (p: ParamsOutputOf<E>) => boolean; message: string },
): ParamsOutcome<ParamsOutputOf<E>> {
  const names = Object.keys(entries);
  let named: Record<string, unknown>;
  if (raw === undefined || raw === null) named = {};
  else if (Array.isArray(raw)) {
    if (raw.length === 1 && isPlainObject(raw[0])) named = raw[0];
    else {
      if (raw.length > names.length) {
        return {
          ok: false,
          field: null,
          message: `expected at most ${names.length} parameter(s)${names.length ? ` (${names.join(', ')})` : ''}, got ${raw.length}`,
        };
      }
      named = {};
      raw.forEach((value, i) => {
        named[names[i]!] = value;
      });
    }
  } else if (isPlainObject(raw)) named = raw;
  else return { ok: false, field: null, message: 'params must be an array or an object' };

  for (const key of Object.keys(named)) {
    if (!Object.hasOwn(entries, key)) {
      return {
        ok: false,
        field: key,
        message: `unknown parameter "${key}"${names.length ? ` (expected ${names.join(', ')})` : ' (this method takes none)'}`,
      };
    }
  }
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const result = v.safeParse(entries[name]!, named[name]);
    if (!result.success) {
      const value = named[name];
      const issue = result.issues[0];
      const what = value === undefined ? 'is required' : issue.message;
      return {
        ok: false,
        field: name,
        message:
          `parameter "${name}" ${what.startsWith('must') || what === 'is required' ? what : `: ${what}`}`.replace(
            ' : ',
            ': ',
          ),
      };
    }
    // null and absent are the same "use the default"; handlers see undefined.
    if (result.output !== null && result.output !== undefined) out[name] = result.output;
  }
  const value = out as ParamsOutputOf<E>;
  if (check && !check.test(value)) return { ok: false, field: null, message: check.message };
  return { ok: true, value };
}
