/**
 * The provider checks an OCR image's format and size from its header alone (imageHeader), not by
 * asking a decoder in its own process. Checked here against sharp itself: for PNGs and JPEGs of
 * random sizes (baseline and progressive) both read the same size; anything else, or a header cut
 * short, is refused and never throws.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import sharp from 'sharp';
import { imageHeader, MAX_OCR_PIXELS, OcrEngine } from '../src/provider/ocr.js';

describe('image header', () => {
  test('property: the size sharp reads is the size the header declares', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 300 }),
        fc.constantFrom('png', 'jpeg', 'progressive'),
        async (width, height, kind) => {
          const img = sharp({ create: { width, height, channels: 3, background: { r: 9, g: 99, b: 199 } } });
          const bytes = new Uint8Array(
            kind === 'png'
              ? await img.png().toBuffer()
              : await img.jpeg({ progressive: kind === 'progressive' }).toBuffer(),
          );
          const meta = await sharp(bytes).metadata();
          const header = imageHeader(bytes);
          assert.deepEqual(header, { format: meta.format, width: meta.width, height: meta.height });
        },
      ),
      { numRuns: 40 },
    );
  });

  test('property: junk and every cut-short header are refused without throwing', async () => {
    const png = new Uint8Array(
      await sharp({ create: { width: 5, height: 7, channels: 3, background: 'red' } })
        .png()
        .toBuffer(),
    );
    const jpeg = new Uint8Array(
      await sharp({ create: { width: 5, height: 7, channels: 3, background: 'red' } })
        .jpeg()
        .toBuffer(),
    );
    for (const whole of [png, jpeg]) {
      assert.ok(imageHeader(whole));
      // Cut before the size: null, never a size read past the end.
      const needed = whole === png ? 24 : whole.indexOf(0xc0, 2) + 8;
      for (let n = 0; n < needed; n++) assert.equal(imageHeader(whole.subarray(0, n)), null, `cut at ${n}`);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (junk) => {
        const h = imageHeader(junk);
        if (h) assert.ok(h.format === 'png' || h.format === 'jpeg');
      }),
    );
    // A GIF, a WebP: refused with the reason the renter sees.
    const gif = new Uint8Array(
      await sharp({ create: { width: 5, height: 7, channels: 3, background: 'red' } })
        .gif()
        .toBuffer(),
    );
    await assert.rejects(OcrEngine.checkImage(gif), /cannot be read: send a PNG or JPEG/);
  });

  test('a header declaring more pixels than the limit is refused before anything decodes it', async () => {
    // A PNG header claiming 65536 × 65536 (a few bytes can expand to gigabytes).
    const huge = new Uint8Array(24);
    huge.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    huge.set([0, 1, 0, 0, 0, 1, 0, 0], 16);
    assert.deepEqual(imageHeader(huge), { format: 'png', width: 65536, height: 65536 });
    await assert.rejects(OcrEngine.checkImage(huge), /at most/);
    assert.ok(65536 * 65536 > MAX_OCR_PIXELS);
    // A zero-sized one as well.
    huge.set([0, 0, 0, 0], 16);
    await assert.rejects(OcrEngine.checkImage(huge), /at most/);
  });
});
