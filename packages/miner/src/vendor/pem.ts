/** PEM armour (RFC 7468): base64 of DER between BEGIN/END lines, 64 characters a line. */
import { DecodeError } from '@unc/core';

export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every block with `label` in `text`, in order. */
export function fromPemAll(text: string, label: string): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*?)-----END ${label}-----`, 'g');
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re))
    out.push(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')));
  return out;
}

/** Exactly one block with `label`. */
export function fromPem(text: string, label: string): Uint8Array {
  const blocks = fromPemAll(text, label);
  if (blocks.length !== 1) throw new DecodeError(`expected one PEM "${label}" block, found ${blocks.length}`);
  return blocks[0]!;
}
