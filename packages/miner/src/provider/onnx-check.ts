/**
 * Checks a renter's ONNX bytes before ONNX Runtime sees them. ONNX lets a tensor keep its data in
 * an "external" file named by a path (TensorProto.data_location = EXTERNAL, external_data entries);
 * ONNX Runtime resolves that path against the model's directory or, for bytes, the working
 * directory, and reads the file: a renter could have the provider's own files (its keyring) read
 * into a tensor and returned as a job output. So every tensor anywhere in the model is visited with
 * a minimal protobuf walker (graphs, initializers, sparse initializers, node attributes, subgraphs
 * of Loop/If/Scan, functions, training info) and a model with any external data is refused.
 *
 * Field numbers are onnx.proto3's. Unknown fields are skipped, malformed wire data is refused.
 */

export class UnsafeModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeModelError';
  }
}

/** Deeper nesting than this (graphs in attributes in graphs …) is refused, not recursed into. */
const MAX_DEPTH = 64;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

interface Field {
  field: number;
  wire: number;
  /** The varint value (wire 0). */
  value: bigint;
  /** The payload (wire 2). */
  start: number;
  end: number;
}

class Reader {
  constructor(
    readonly b: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  varint(): bigint {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new UnsafeModelError('the model is not valid ONNX protobuf');
      const byte = this.b[this.pos++]!;
      v |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return v;
      shift += 7n;
    }
    throw new UnsafeModelError('the model is not valid ONNX protobuf');
  }

  /** Small varints (keys, lengths) without BigInt. */
  smallVarint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new UnsafeModelError('the model is not valid ONNX protobuf');
      const byte = this.b[this.pos++]!;
      v += (byte & 0x7f) * mul;
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(v)) break;
        return v;
      }
      mul *= 128;
    }
    throw new UnsafeModelError('the model is not valid ONNX protobuf');
  }

  /** The next field, or null at the end; the reader is left after it. */
  next(): Field | null {
    if (this.pos >= this.end) return null;
    const keyStart = this.pos;
    const key = this.smallVarint();
    // protobuf (ONNX Runtime's parser) reads a key of at most 5 bytes into 32 bits, dropping higher
    // bits: 13·8+2 + 2^32 is external_data to it. A key it would read differently from this walker
    // (longer than 5 bytes, or above 32 bits) is refused, never skipped as an unknown field.
    if (this.pos - keyStart > 5 || key > 0xffffffff)
      throw new UnsafeModelError('the model is not valid ONNX protobuf');
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field === 0) throw new UnsafeModelError('the model is not valid ONNX protobuf');
    const f: Field = { field, wire, value: 0n, start: 0, end: 0 };
    switch (wire) {
      case WIRE_VARINT:
        f.value = this.varint();
        break;
      case WIRE_I64:
        this.skip(8);
        break;
      case WIRE_I32:
        this.skip(4);
        break;
      case WIRE_LEN: {
        const len = this.smallVarint();
        // protobuf refuses lengths of 2 GiB and more; no model here is that large anyway.
        if (len > 0x7fffffff) throw new UnsafeModelError('the model is not valid ONNX protobuf');
        f.start = this.pos;
        this.skip(len);
        f.end = this.pos;
        break;
      }
      default:
        // Groups (3, 4) are not used by ONNX; anything else is not protobuf.
        throw new UnsafeModelError('the model is not valid ONNX protobuf');
    }
    return f;
  }

  private skip(n: number): void {
    if (n > this.end - this.pos) throw new UnsafeModelError('the model is not valid ONNX protobuf');
    this.pos += n;
  }
}

type Walker = (b: Uint8Array, start: number, end: number, depth: number) => void;

/** Visits every field of one message; `sub` maps a length-delimited field to its message walker. */
function walkMessage(
  b: Uint8Array,
  start: number,
  end: number,
  depth: number,
  sub: Record<number, Walker>,
  onField?: (f: Field) => void,
): void {
  if (depth > MAX_DEPTH) throw new UnsafeModelError('the model nests graphs too deeply');
  const r = new Reader(b, start, end);
  for (let f = r.next(); f; f = r.next()) {
    onField?.(f);
    const w = sub[f.field];
    if (w) {
      // A message field must be length-delimited; another wire type would be read differently by
      // ONNX Runtime's parser than by this walker, so it is refused rather than guessed at.
      if (f.wire !== WIRE_LEN) throw new UnsafeModelError('the model is not valid ONNX protobuf');
      w(b, f.start, f.end, depth + 1);
    }
  }
}

const EXTERNAL_REFUSED =
  'the model keeps tensor data in external files, which this provider does not load; embed the weights in the model';

const tensor: Walker = (b, s, e, d) =>
  walkMessage(
    b,
    s,
    e,
    d,
    {
      // TensorProto.external_data (StringStringEntryProto): any entry at all means external data.
      13: () => {
        throw new UnsafeModelError(EXTERNAL_REFUSED);
      },
    },
    (f) => {
      // TensorProto.data_location: DEFAULT = 0, EXTERNAL = 1. Any other wire type or value is refused.
      if (f.field === 14 && (f.wire !== WIRE_VARINT || f.value !== 0n))
        throw new UnsafeModelError(EXTERNAL_REFUSED);
    },
  );

// SparseTensorProto: values = 1, indices = 2 (TensorProto).
const sparseTensor: Walker = (b, s, e, d) => walkMessage(b, s, e, d, { 1: tensor, 2: tensor });

// AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11, sparse_tensor = 22, sparse_tensors = 23.
const attribute: Walker = (b, s, e, d) =>
  walkMessage(b, s, e, d, { 5: tensor, 6: graph, 10: tensor, 11: graph, 22: sparseTensor, 23: sparseTensor });

// NodeProto: attribute = 5.
const node: Walker = (b, s, e, d) => walkMessage(b, s, e, d, { 5: attribute });

// GraphProto: node = 1, initializer = 5, sparse_initializer = 15.
function graph(b: Uint8Array, s: number, e: number, d: number): void {
  walkMessage(b, s, e, d, { 1: node, 5: tensor, 15: sparseTensor });
}

// FunctionProto: node = 7, attribute_proto = 11.
const fn: Walker = (b, s, e, d) => walkMessage(b, s, e, d, { 7: node, 11: attribute });

// TrainingInfoProto: initialization = 1, algorithm = 2 (GraphProto).
const trainingInfo: Walker = (b, s, e, d) => walkMessage(b, s, e, d, { 1: graph, 2: graph });

/**
 * Throws UnsafeModelError unless the bytes are an ONNX ModelProto whose tensors all hold their data
 * inline. ORT-format (flatbuffer) models are refused too: only ONNX protobuf is accepted.
 */
export function assertSelfContainedModel(bytes: Uint8Array): void {
  if (bytes.length === 0) throw new UnsafeModelError('the model is empty');
  if (bytes.length >= 8 && Buffer.from(bytes.subarray(4, 8)).toString('latin1') === 'ORTM')
    throw new UnsafeModelError('ORT-format models are not accepted; send the ONNX model');
  let sawGraph = false;
  // ModelProto: graph = 7, training_info = 20, functions = 25.
  walkMessage(bytes, 0, bytes.length, 0, { 7: graph, 20: trainingInfo, 25: fn }, (f) => {
    if (f.field === 7) sawGraph = true;
  });
  if (!sawGraph) throw new UnsafeModelError('the model has no graph');
}
