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

function convert(value: unknown, seen: Set<object>): JsonValue | undefined {
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
      return Array.from(list as unknown as ArrayLike<number | bigint>, (v) => convert(v, seen) ?? null);
    }
    if (Array.isArray(obj)) return obj.map((v) => convert(v, seen) ?? null);
    if (obj instanceof Set) return [...obj].map((v) => convert(v, seen) ?? null);
    const out: { [key: string]: JsonValue } = {};
    if (obj instanceof Map) {
      for (const [k, v] of obj) {
        const converted = convert(v, seen);
        if (converted !== undefined) setKey(out, keyToString(k), converted);
      }
      return out;
    }
    if (hasToJson(obj)) return convert(obj.toJSON(), seen);
    for (const [k, v] of Object.entries(obj)) {
      const converted = convert(v, seen);
      if (converted !== undefined) setKey(out, k, converted);
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
 */
export function toJsonValue(value: unknown): JsonValue {
  return convert(value, new Set()) ?? null;
}
