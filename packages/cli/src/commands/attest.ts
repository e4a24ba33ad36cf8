import { existsSync, readFileSync } from 'node:fs';
import {
  type AttestedStatement,
  fromHex,
  pemToDer,
  splitSpdmReport,
  toHex,
  UncError,
  verifyNvidiaSpdm,
  verifyTpm2,
} from '@unc/core';
import { Command } from 'commander';
import { ctxOf } from '../context.js';

function readFile(path: string, what: string): Uint8Array {
  if (!existsSync(path)) throw new UncError('BAD_FILE', `${what} file ${path} does not exist`);
  return new Uint8Array(readFileSync(path));
}

/** Certificates from a PEM file (any number) or a single DER file. */
function readCerts(path: string, what: string): Uint8Array[] {
  const raw = readFile(path, what);
  const text = new TextDecoder().decode(raw);
  if (text.includes('-----BEGIN')) {
    const ders = pemToDer(text);
    if (ders.length === 0) throw new UncError('BAD_FILE', `${what} file ${path} holds no certificate`);
    return ders;
  }
  return [raw];
}

function hex32(text: string, what: string): Uint8Array {
  try {
    return fromHex(text.trim(), 32);
  } catch {
    throw new UncError('BAD_ARGUMENT', `--${what} must be 32 bytes of hex (64 digits)`);
  }
}

function blockTime(at: string | undefined): bigint {
  if (at === undefined) return BigInt(Date.now());
  const ms = Date.parse(at);
  if (Number.isNaN(ms)) throw new UncError('BAD_ARGUMENT', `invalid --at "${at}": expected an ISO time`);
  return BigInt(ms);
}

function statementJson(s: AttestedStatement): Record<string, unknown> {
  return {
    profile: s.profile,
    chipId: toHex(s.chipId),
    vendorId: s.vendorId,
    modelId: s.modelId,
    message: toHex(s.message),
    details: Object.fromEntries(
      Object.entries(s.details).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v]),
    ),
  };
}

export function attestCommand(): Command {
  const attest = new Command('attest').description('attestation evidence, checked offline');
  attest
    .command('verify')
    .description('verify evidence offline and print the attested statement (chip id, vendor, model, message)')
    .requiredOption('--profile <profile>', 'tpm2 or nvidia-spdm')
    .option('--attest <file>', 'tpm2: TPMS_ATTEST as written by tpm2_quote -m / tpm2_gettime --attestation')
    .option('--signature <file>', 'tpm2: TPMT_SIGNATURE as written by tpm2_quote -s / tpm2_gettime -o')
    .option('--ak-cert <file>', 'tpm2: the AK certificate (PEM or DER)')
    .option('--report <file>', 'nvidia-spdm: the GET_MEASUREMENTS request ‖ response, as hex')
    .option('--chain <file>', 'issuing certificates (PEM, several, or DER)')
    .option('--root <file>', "the vendor's root certificate(s) (PEM or DER)")
    .option('--message <hex>', 'tpm2: the 32-byte message the evidence must bind (extraData)')
    .option('--nonce <hex>', 'nvidia-spdm: the 32-byte requester nonce')
    .option('--vendor <id>', 'vendor id to report', '')
    .option('--at <time>', 'check certificate validity at this time (default: now)')
    .action(
      (
        opts: {
          profile: string;
          attest?: string;
          signature?: string;
          akCert?: string;
          report?: string;
          chain?: string;
          root?: string;
          message?: string;
          nonce?: string;
          vendor: string;
          at?: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const need = (v: string | undefined, flag: string): string => {
          if (!v) throw new UncError('BAD_ARGUMENT', `--profile ${opts.profile} needs --${flag}`);
          return v;
        };
        const atMs = blockTime(opts.at);
        const roots = readCerts(need(opts.root, 'root'), 'root');
        let statement: AttestedStatement;
        if (opts.profile === 'tpm2') {
          const [akCertificate] = readCerts(need(opts.akCert, 'ak-cert'), 'AK certificate');
          statement = verifyTpm2({
            attest: readFile(need(opts.attest, 'attest'), 'attest'),
            signature: readFile(need(opts.signature, 'signature'), 'signature'),
            akCertificate: akCertificate!,
            chain: opts.chain ? readCerts(opts.chain, 'chain') : [],
            roots,
            revokedSerials: new Set(),
            atMs,
            expectedMessage: hex32(need(opts.message, 'message'), 'message'),
            vendorId: opts.vendor,
          });
        } else if (opts.profile === 'nvidia-spdm') {
          const reportText = new TextDecoder()
            .decode(readFile(need(opts.report, 'report'), 'report'))
            .replace(/\s+/g, '');
          let report: Uint8Array;
          try {
            report = fromHex(reportText);
          } catch {
            throw new UncError('BAD_FILE', `${opts.report} is not hex`);
          }
          const { request, response } = splitSpdmReport(report);
          statement = verifyNvidiaSpdm({
            request,
            response,
            chain: readCerts(need(opts.chain, 'chain'), 'chain'),
            roots,
            revokedSerials: new Set(),
            atMs,
            expectedMessage: hex32(need(opts.nonce, 'nonce'), 'nonce'),
            vendorId: opts.vendor,
          });
        } else {
          throw new UncError('BAD_ARGUMENT', `--profile must be tpm2 or nvidia-spdm, not "${opts.profile}"`);
        }
        const out = statementJson(statement);
        ctx.print(out, () => JSON.stringify(out, null, 2));
      },
    );
  return attest;
}
