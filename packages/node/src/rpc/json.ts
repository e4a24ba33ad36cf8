/**
 * The one place that decides how chain values look on the wire. JSON has no bigint or byte type,
 * and JSON.stringify would throw on the former and print the latter as `{"0":…}`, so every RPC
 * result goes through toJsonValue first.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function keyToString(key: unknown): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'bigint' || typeof key === 'number' || typeof key === 'boolean') return String(key);
  if (key instanceof Uint8Array) return bytesToHex(key);
  // Anything else would stringify to "[object Object]" and silently merge distinct entries.
  throw new TypeError(`cannot use a ${typeof key} as a JSON object key`);
}

function setKey(out: { [key: string]: JsonValue }, key: string, value: JsonValue): void {
  // Plain assignment to "__proto__" would replace the prototype instead of adding a property.
  if (key === '__proto__') {
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    out[key] = value;
  }
}

function hasToJson(value: object): value is { toJSON(): unknown } {
  return typeof (value as { toJSON?: unknown }).toJSON === 'function';
}

/** Thrown when a value's JSON would exceed the byte budget given to toJsonValue. */
export class JsonTooLargeError extends RangeError {
  constructor(readonly limit: number) {
    super(`JSON value exceeds ${limit} bytes`);
    this.name = 'JsonTooLargeError';
  }
}

/**
 * A running lower bound on the serialised size (strings' UTF-8 bytes, quotes, separators). Escapes
 * can make the real text larger, at most 6× for control characters, so a value that passes is
 * bounded. Bytes, not characters: a string of 3-byte characters is three times its length on the
 * wire, and counted by length it passed a bound it was three times over.
 */
class Budget {
  private left: number;
  constructor(readonly limit: number) {
    this.left = limit;
  }
  spend(bytes: number): void {
    this.left -= bytes;
    if (this.left < 0) throw new JsonTooLargeError(this.limit);
  }
}

function convert(value: unknown, seen: Set<object>, budget?: Budget): JsonValue | undefined {
  const out = convertInner(value, seen, budget);
  if (budget && out !== undefined) {
    // Containers were charged for their members already; this charges the scalar or the brackets,
    // with one separator each (a shortest spelling: a lower bound of the real size).
    budget.spend(typeof out === 'string' ? Buffer.byteLength(out) + 3 : 2);
  }
  return out;
}

function convertInner(value: unknown, seen: Set<object>, budget?: Budget): JsonValue | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      // Mirrors JSON.stringify, which has no spelling for NaN or the infinities.
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  const obj = value as object;
  if (obj instanceof Uint8Array) return bytesToHex(obj);
  if (obj instanceof ArrayBuffer) return bytesToHex(new Uint8Array(obj));
  if (seen.has(obj)) throw new TypeError('cannot convert a circular structure to JSON');
  seen.add(obj);
  try {
    if (ArrayBuffer.isView(obj)) {
      // Other typed arrays (e.g. BigUint64Array) are lists of numbers, not byte strings.
      const list = obj instanceof DataView ? new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength) : obj;
      if (list instanceof Uint8Array) return bytesToHex(list);
      return Array.from(
        list as unknown as ArrayLike<number | bigint>,
        (v) => convert(v, seen, budget) ?? null,
      );
    }
    if (Array.isArray(obj)) return obj.map((v) => convert(v, seen, budget) ?? null);
    if (obj instanceof Set) return [...obj].map((v) => convert(v, seen, budget) ?? null);
    const out: { [key: string]: JsonValue } = {};
    if (obj instanceof Map) {
      for (const [k, v] of obj) {
        const converted = convert(v, seen, budget);
        if (converted !== undefined) {
          const key = keyToString(k);
          budget?.spend(Buffer.byteLength(key) + 3);
          setKey(out, key, converted);
        }
      }
      return out;
    }
    if (hasToJson(obj)) return convertInner(obj.toJSON(), seen, budget);
    for (const [k, v] of Object.entries(obj)) {
      const converted = convert(v, seen, budget);
      if (converted !== undefined) {
        budget?.spend(Buffer.byteLength(k) + 3);
        setKey(out, k, converted);
      }
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}

/**
 * Converts a value to plain JSON: bigint → decimal string, Uint8Array → lowercase hex (no 0x),
 * Map → object, Set → array, recursively. `undefined` becomes null (object members holding it are
 * dropped, as JSON.stringify does). Throws TypeError on circular structures.
 *
 * With `maxBytes`, throws JsonTooLargeError as soon as the JSON text is known to exceed it, so an
 * oversized result is refused while it is being walked, before any text is built.
 */
export function toJsonValue(value: unknown, maxBytes?: number): JsonValue {
  const budget = maxBytes === undefined ? undefined : new Budget(maxBytes);
  return convert(value, new Set(), budget) ?? null;
}
