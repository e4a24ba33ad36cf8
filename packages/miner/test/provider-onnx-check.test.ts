/**
 * The external-data check: ONNX Runtime reads a tensor's "external" data from a file named in the
 * model (relative to the working directory when loaded from bytes), so a renter's model could read
 * the provider's files. Every place a tensor can hide is refused before ONNX Runtime sees it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { assertSelfContainedModel, DEFAULT_OCR_MODELS, UnsafeModelError } from '../src/index.js';
import {
  type ExternalPlace,
  externalDataModel,
  loopModel,
  wideKeyExternalDataModel,
} from './fixtures/attack-models.js';
import { affineModel } from './fixtures/make-fixtures.js';

describe('ONNX external data check', () => {
  test('plain models pass: the affine fixture, a Loop, the PP-OCRv4 models', () => {
    assertSelfContainedModel(affineModel());
    assertSelfContainedModel(loopModel());
    assertSelfContainedModel(new Uint8Array(readFileSync(DEFAULT_OCR_MODELS.detectionPath)));
    assertSelfContainedModel(new Uint8Array(readFileSync(DEFAULT_OCR_MODELS.recognitionPath)));
  });

  const places: ExternalPlace[] = [
    'initializer',
    'location-only',
    'constant',
    'loop-body',
    'sparse',
    'function',
  ];
  for (const place of places)
    test(`external data in ${place} is refused`, () => {
      assert.throws(
        () => assertSelfContainedModel(externalDataModel('keyring.json', 4, place)),
        (e: Error) => e instanceof UnsafeModelError && /external files/.test(e.message),
      );
    });

  test('keys written as over-long varints, which protobuf reads modulo 2^32, are refused', () => {
    // ONNX Runtime's protobuf reads a tag of up to 5 varint bytes into 32 bits and drops the higher
    // bits, so 0xea 0x80 0x80 0x80 0x10 (13·8+2 + 2^32) is external_data to it. Read exactly, it is
    // an unknown field 13 + 2^29 that a walker skips, and ONNX Runtime then loads the named file.
    assert.throws(
      () => assertSelfContainedModel(wideKeyExternalDataModel('keyring.json', 4)),
      (e: Error) => e instanceof UnsafeModelError,
    );
  });

  test('truncated, junk and ORT-format bytes are refused, never half-checked', () => {
    const m = affineModel();
    for (let cut = 1; cut < m.length; cut += 7)
      assert.throws(() => assertSelfContainedModel(m.subarray(0, cut)), UnsafeModelError);
    assert.throws(() => assertSelfContainedModel(new TextEncoder().encode('not a model')), UnsafeModelError);
    assert.throws(() => assertSelfContainedModel(new Uint8Array(0)), UnsafeModelError);
    const ort = new Uint8Array(16);
    ort.set(new TextEncoder().encode('ORTM'), 4);
    assert.throws(() => assertSelfContainedModel(ort), /ORT-format/);
  });

  test('graphs nested deeper than the limit are refused without exhausting the stack', () => {
    // ModelProto.graph → NodeProto → AttributeProto.g → GraphProto → … 200 levels deep.
    const len = (n: number) => {
      const out: number[] = [];
      let v = n;
      do {
        out.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>>= 7;
      } while (v > 0);
      return out;
    };
    let g: number[] = [];
    for (let i = 0; i < 200; i++) {
      const attr = [0x32, ...len(g.length), ...g]; // g = 6
      const node = [0x2a, ...len(attr.length), ...attr]; // attribute = 5
      g = [0x0a, ...len(node.length), ...node]; // node = 1
    }
    const model = new Uint8Array([0x3a, ...len(g.length), ...g]); // graph = 7
    assert.throws(() => assertSelfContainedModel(model), /too deeply/);
  });
});
