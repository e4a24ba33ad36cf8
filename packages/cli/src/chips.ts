/** Loading chip signers from the files the vendor tooling writes. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { equalBytes, pemToDer, UncError } from '@unc/core';
import { parseTpmEndpoint, TpmSigner } from '@unc/miner';

/** A TPM chip from `--tpm-chip <endpoint>=<dir>`: the endpoint and the directory `unc vendor provision` wrote. */
export function tpmChipFromSpec(spec: string): TpmSigner {
  const eq = spec.lastIndexOf('=');
  if (eq <= 0)
    throw new UncError(
      'BAD_CHIP',
      `invalid --tpm-chip "${spec}": expected <host:port|/dev/tpmrm0>=<provisioned dir>`,
    );
  const endpoint = parseTpmEndpoint(spec.slice(0, eq));
  return tpmChipFromDir(endpoint, spec.slice(eq + 1));
}

export function tpmChipFromDir(
  endpoint: ReturnType<typeof parseTpmEndpoint>,
  dir: string,
  label?: string,
): TpmSigner {
  const certPath = join(dir, 'ak.cert.pem');
  const chainPath = join(dir, 'chain.pem');
  const metaPath = join(dir, 'ak.json');
  for (const p of [certPath, chainPath, metaPath]) {
    if (!existsSync(p))
      throw new UncError('BAD_CHIP', `${p} is missing: provision the chip with unc vendor provision first`);
  }
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { vendorId?: string };
  if (typeof meta.vendorId !== 'string') throw new UncError('BAD_CHIP', `${metaPath} names no vendorId`);
  const [akCertificate] = pemToDer(readFileSync(certPath, 'utf8'));
  if (!akCertificate) throw new UncError('BAD_CHIP', `${certPath} holds no certificate`);
  // chain.pem is the full chain from the AK certificate up; the evidence carries the issuers only.
  const chain = pemToDer(readFileSync(chainPath, 'utf8')).filter((der) => !equalBytes(der, akCertificate));
  return new TpmSigner(endpoint, { vendorId: meta.vendorId, akCertificate, chain }, label);
}
