import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Action,
  addressFromPublicKey,
  checkId,
  ed25519PublicKey,
  ed25519Sign,
  encodeAddress,
  type GovProposal,
  governanceSigningBytes,
  MAX_MODEL_POWER,
  normalizeSerialHex,
  parseCertificate,
  revocationId,
  toHex,
  UncError,
} from '@unc/core';
import {
  createVendorCa,
  DeviceTransport,
  fromPem,
  issueAkCertificate,
  loadVendorCa,
  parseTpmEndpoint,
  provisionChip,
  revokeSerials,
  SwtpmSocketTransport,
  Tpm,
  toPem,
  writeVendorCa,
} from '@unc/miner';
import { buildTransaction, encodeSigned, type ModelJson } from '@unc/sdk';
import { Command } from 'commander';
import { type Context, ctxOf } from '../context.js';
import { spinner } from '../progress.js';
import { checkBalance, confirm, confirmationLines } from '../send.js';

function date(text: string, name: string): Date {
  const d = new Date(text);
  if (Number.isNaN(d.getTime()))
    throw new UncError('BAD_ARGUMENT', `invalid ${name} "${text}": expected an ISO date`);
  return d;
}

function vendorId(text: string): string {
  try {
    checkId(text, 'vendor id');
  } catch (err) {
    throw new UncError('BAD_ARGUMENT', (err as Error).message);
  }
  return text;
}

/** The model as the node's registry holds it, or null. */
async function registeredModel(ctx: Context, vendorId: string, modelId: string): Promise<ModelJson | null> {
  const models = await ctx.client().getModels();
  return models.find((m) => m.vendorId === vendorId && m.modelId === modelId) ?? null;
}

/**
 * Sends governance proposals approved by one keyring key (a threshold-1 authority, as on dev
 * chains; larger authorities collect approvals out of band). Proposals in one transaction use
 * consecutive governance nonces.
 */
export async function sendGovernance(
  ctx: Context,
  from: string,
  passwordFile: string | undefined,
  proposals: GovProposal[],
): Promise<{ hash: string; height: number }> {
  const client = ctx.client();
  const status = await client.status();
  const seed = await ctx.unlockKey(from, status.chainId, { passwordFile });
  const gov = await client.call<{ threshold: number; keys: string[]; nonce: number }>('unc_getGovernance');
  const publicKey = ed25519PublicKey(seed);
  if (!gov.keys.includes(toHex(publicKey))) {
    throw new UncError('GOV_NOT_AUTHORITY', `key "${from}" is not a governance key of this chain`);
  }
  if (gov.threshold > 1) {
    throw new UncError(
      'GOV_THRESHOLD',
      `this chain's governance needs ${gov.threshold} approvals; one key cannot enact it`,
    );
  }
  const actions: Action[] = proposals.map((proposal, i) => ({
    type: 'governance',
    proposal,
    approvals: [
      {
        publicKey,
        signature: ed25519Sign(seed, governanceSigningBytes(status.chainId, BigInt(gov.nonce + i), proposal)),
      },
    ],
  }));
  // For the chain the approvals name and the confirmation shows (the node's status is read again).
  const stx = await buildTransaction(client, seed, actions, { chainId: status.chainId });
  const account = await client.getAccount(encodeAddress(addressFromPublicKey(publicKey)));
  checkBalance({ from, balance: BigInt(account.balance), spend: 0n, fee: stx.tx.fee });
  await confirm(
    confirmationLines({
      summary: proposals.map((p) => `Enact governance proposal: ${p.type}`),
      from,
      address: account.address,
      fee: stx.tx.fee,
      spend: 0n,
      chainId: status.chainId,
      node: ctx.nodeUrl,
    }),
    { yes: ctx.yes, interactive: process.stdin.isTTY === true, fee: stx.tx.fee },
  );
  const { hash } = await client.sendRawTransaction(encodeSigned(stx));
  const outcome = await client.waitForTransaction(hash);
  if (outcome.status === 'rejected')
    throw new UncError(outcome.code, `governance transaction dropped: ${outcome.reason}`);
  return { hash, height: outcome.height };
}

async function openTpm(endpointText: string): Promise<Tpm> {
  const endpoint = parseTpmEndpoint(endpointText);
  const tpm = new Tpm(
    endpoint.kind === 'tcp'
      ? new SwtpmSocketTransport({ host: endpoint.host, port: endpoint.port, timeoutMs: 30_000 })
      : new DeviceTransport({ path: endpoint.path }),
  );
  await tpm.startup('clear');
  return tpm;
}

export function vendorCommand(): Command {
  const vendor = new Command('vendor').description(
    'vendor tooling for test and dev networks: CA, chip provisioning, registry, revocation',
  );
  const ca = vendor.command('ca').description("the vendor's certificate authority");

  ca.command('create')
    .description('create a vendor CA (root + intermediate) as PEM files')
    .requiredOption('--vendor-id <id>', 'the id the chain registry will know the vendor by')
    .requiredOption('--out <dir>', 'directory for the CA files')
    .option('--curve <curve>', 'P-256 or P-384', 'P-256')
    .option('--not-before <date>', 'start of validity', '2026-01-01T00:00:00Z')
    .option('--not-after <date>', 'end of validity', '2036-01-01T00:00:00Z')
    .action(
      async (
        opts: { vendorId: string; out: string; curve: string; notBefore: string; notAfter: string },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        if (opts.curve !== 'P-256' && opts.curve !== 'P-384')
          throw new UncError('BAD_ARGUMENT', '--curve must be P-256 or P-384');
        if (existsSync(join(opts.out, 'root.key.pem')))
          throw new UncError('CA_EXISTS', `${opts.out} already holds a CA`);
        const created = createVendorCa({
          vendorId: vendorId(opts.vendorId),
          curve: opts.curve,
          notBefore: date(opts.notBefore, '--not-before'),
          notAfter: date(opts.notAfter, '--not-after'),
        });
        await writeVendorCa(created, opts.out);
        ctx.print(
          { vendorId: created.vendorId, dir: opts.out },
          () => `created CA of vendor ${created.vendorId} in ${opts.out}`,
        );
      },
    );

  vendor
    .command('provision')
    .description("create a chip's attestation key in its TPM and issue its AK certificate")
    .requiredOption('--ca <dir>', 'the vendor CA directory')
    .requiredOption('--tpm <endpoint>', 'host:port of a TPM simulator (swtpm) or /dev/tpmrm0')
    .requiredOption('--model <id>', 'the chip model id written into the certificate')
    .requiredOption('--out <dir>', "directory for the chip's certificate files")
    .option('--not-before <date>', 'start of validity', '2026-01-01T00:00:00Z')
    .option('--not-after <date>', 'end of validity', '2036-01-01T00:00:00Z')
    .action(
      async (
        opts: { ca: string; tpm: string; model: string; out: string; notBefore: string; notAfter: string },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const loaded = await loadVendorCa(opts.ca);
        const progress = spinner(`provisioning the TPM at ${opts.tpm}: creating its attestation key…`);
        let tpm: Tpm;
        try {
          tpm = await openTpm(opts.tpm);
        } catch (err) {
          progress.done();
          throw err;
        }
        try {
          const chip = await provisionChip(tpm, loaded, {
            model: opts.model,
            notBefore: date(opts.notBefore, '--not-before'),
            notAfter: date(opts.notAfter, '--not-after'),
            outDir: opts.out,
          });
          progress.done();
          const out = { vendorId: loaded.vendorId, serial: chip.serial.toString(16), dir: opts.out };
          ctx.print(out, () => `provisioned chip with AK certificate serial ${out.serial} in ${opts.out}`);
        } finally {
          progress.done();
          await tpm.close();
        }
      },
    );

  vendor
    .command('certify')
    // It certifies whatever key it is given: nothing here proves the key lives in a TPM, is
    // restricted, or is the only AK of its TPM (audit audchip C7). Only for a key the vendor read
    // from a TPM in its own hands; a key a miner sends is a software key until proven otherwise
    // (`unc vendor provision` makes the AK and checks it on the TPM itself).
    .description(
      'issue an AK certificate for any public key given (e.g. from tpm2_createak): only for a key read from a TPM in your own hands, never one a miner sends; nothing here checks it is a TPM key',
    )
    .requiredOption('--ca <dir>', 'the vendor CA directory')
    .requiredOption('--ak-public <file>', "the AK's public key, PEM (tpm2_print -t TPM2B_PUBLIC -f pem)")
    .requiredOption('--model <id>', 'the chip model id written into the certificate')
    .requiredOption('--out <file>', 'where to write the certificate (PEM)')
    .option('--not-before <date>', 'start of validity', '2026-01-01T00:00:00Z')
    .option('--not-after <date>', 'end of validity', '2036-01-01T00:00:00Z')
    .action(
      async (
        opts: {
          ca: string;
          akPublic: string;
          model: string;
          out: string;
          notBefore: string;
          notAfter: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const loaded = await loadVendorCa(opts.ca);
        if (!existsSync(opts.akPublic)) throw new UncError('BAD_FILE', `${opts.akPublic} does not exist`);
        let spki: Uint8Array;
        try {
          spki = fromPem(readFileSync(opts.akPublic, 'utf8'), 'PUBLIC KEY');
        } catch {
          throw new UncError('BAD_FILE', `${opts.akPublic} is not a PEM public key`);
        }
        const { certificate, serial } = issueAkCertificate(loaded, spki, {
          model: opts.model,
          notBefore: date(opts.notBefore, '--not-before'),
          notAfter: date(opts.notAfter, '--not-after'),
        });
        writeFileSync(
          opts.out,
          toPem('CERTIFICATE', certificate) + toPem('CERTIFICATE', loaded.intermediate.certificate),
        );
        ctx.print(
          { serial: serial.toString(16), out: opts.out },
          () => `issued AK certificate ${serial.toString(16)} to ${opts.out} (with the intermediate)`,
        );
      },
    );

  vendor
    .command('register')
    .description('register the vendor (its root and profile) and a chip model through governance')
    .requiredOption('--ca <dir>', 'the vendor CA directory (its root becomes the trust anchor)')
    .requiredOption('--from <key>', 'governance key in the keyring')
    .option('--profile <profile>', 'attestation profile', 'tpm2')
    .option('--name <name>', 'vendor display name')
    .requiredOption('--model <id>', 'chip model id')
    .requiredOption('--power <n>', `rated power: dense FP16 TFLOPS × 1000, 1…${MAX_MODEL_POWER}`)
    .option('--model-name <name>', 'model display name')
    .option('--require-ak-eku', 'tpm2: AK certificates must carry extendedKeyUsage 2.23.133.8.3')
    .option(
      '--require-hardware-module-name',
      'tpm2: AK certificates must name the device (HardwareModuleName): one TPM, one chip',
    )
    .option('--password-file <file>', "the governance key's password")
    .action(
      async (
        opts: {
          ca: string;
          requireAkEku?: boolean;
          requireHardwareModuleName?: boolean;
          from: string;
          profile: string;
          name?: string;
          model: string;
          power: string;
          modelName?: string;
          passwordFile?: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        if (opts.profile !== 'tpm2' && opts.profile !== 'nvidia-spdm') {
          throw new UncError('BAD_ARGUMENT', '--profile must be tpm2 or nvidia-spdm for a CA-based vendor');
        }
        if ((opts.requireAkEku || opts.requireHardwareModuleName) && opts.profile !== 'tpm2')
          throw new UncError(
            'BAD_ARGUMENT',
            '--require-ak-eku and --require-hardware-module-name are for tpm2',
          );
        // The chain refuses a model past MAX_MODEL_POWER (BAD_POWER): say so before anything is signed.
        if (
          !/^\d{1,30}$/.test(opts.power) ||
          BigInt(opts.power) === 0n ||
          BigInt(opts.power) > MAX_MODEL_POWER
        )
          throw new UncError('BAD_ARGUMENT', `--power must be an integer 1…${MAX_MODEL_POWER}`);
        const loaded = await loadVendorCa(opts.ca);
        const { hash, height } = await sendGovernance(ctx, opts.from, opts.passwordFile, [
          {
            type: 'setVendor',
            vendor: {
              id: loaded.vendorId,
              name: opts.name ?? loaded.organization,
              profile: opts.profile,
              roots: [loaded.root.certificate],
              ...(opts.requireAkEku ? { requireAkEku: true } : {}),
              ...(opts.requireHardwareModuleName ? { requireHardwareModuleName: true } : {}),
            },
          },
          {
            type: 'setModel',
            model: {
              vendorId: loaded.vendorId,
              modelId: opts.model,
              name: opts.modelName ?? opts.model,
              power: BigInt(opts.power),
            },
          },
        ]);
        ctx.print(
          { hash, height, vendorId: loaded.vendorId, modelId: opts.model },
          () =>
            `registered vendor ${loaded.vendorId} and model ${opts.model} at height ${height} (tx ${hash})`,
        );
      },
    );

  vendor
    .command('revoke')
    .description('revoke a certificate serial: every chip it vouched for stops at once')
    .requiredOption('--ca <dir>', 'the vendor CA directory (its signed revocation list is updated)')
    .requiredOption('--serial <hex>', 'certificate serial, hex')
    .requiredOption('--from <key>', 'governance key in the keyring')
    .option('--password-file <file>', "the governance key's password")
    .action(
      async (opts: { ca: string; serial: string; from: string; passwordFile?: string }, cmd: Command) => {
        const ctx = ctxOf(cmd);
        // Hex digits after an optional 0x, nothing around them: core's normalizeSerialHex trims
        // whitespace, but a serial pasted with a stray space or newline is refused here, as it was.
        // Its canonical form is core's (the one revocation ids carry): lowercase, whole octets,
        // leading zero octets dropped.
        const serial = /^(0x)?[0-9a-f]+$/i.test(opts.serial) ? normalizeSerialHex(opts.serial) : '';
        // At most 20 octets (RFC 5280 §4.1.2.2): no certificate has a longer serial, and the chain
        // refuses such a revocation id (BAD_SERIAL), after the CA's revocation list was updated.
        if (serial.length === 0 || serial.length > 40)
          throw new UncError('BAD_ARGUMENT', `invalid serial "${opts.serial}" (hex, at most 20 octets)`);
        const value = BigInt(`0x${serial}`);
        const loaded = await loadVendorCa(opts.ca);
        const intermediate = parseCertificate(loaded.intermediate.certificate);
        // The intermediate's own certificate is the root's, not one it issued: its serial in the
        // intermediate's list and on chain under the intermediate's name would revoke nothing
        // (no certificate has that issuer and serial) while the list says it is revoked.
        if (value === BigInt(`0x${intermediate.serialHex}`))
          throw new UncError(
            'BAD_ARGUMENT',
            `serial ${value.toString(16)} is the CA's intermediate certificate itself (issued by the root): this command revokes certificates the intermediate issued; to stop trusting the intermediate, replace the vendor's roots (unc vendor register with a new CA)`,
          );
        await revokeSerials(loaded, join(opts.ca, 'revocations.pem'), [value], new Date());
        // On chain a certificate is revoked by issuer and serial (a serial is unique per CA only):
        // the AK certificates this CA issues are the intermediate's.
        const id = revocationId(intermediate.subject.der, serial);
        const { hash, height } = await sendGovernance(ctx, opts.from, opts.passwordFile, [
          { type: 'revokeSerial', vendorId: loaded.vendorId, serial: id, revoked: true },
        ]);
        ctx.print(
          { hash, height, serial, revocationId: id },
          () => `revoked serial ${serial} of ${loaded.vendorId} (${id}) at height ${height}`,
        );
      },
    );

  vendor
    .command('set-model')
    .description("set a chip model's rated power: every chip of it follows from the next epoch")
    .requiredOption('--vendor <id>', 'vendor id')
    .requiredOption('--model <id>', 'chip model id')
    .requiredOption('--power <n>', 'rated power, dense FP16 TFLOPS × 1000')
    .option(
      '--model-name <name>',
      'model display name (default: the name the registry holds, or the model id for a new model)',
    )
    .requiredOption('--from <key>', 'governance key in the keyring')
    .option('--password-file <file>', "the governance key's password")
    .action(
      async (
        opts: {
          vendor: string;
          model: string;
          power: string;
          modelName?: string;
          from: string;
          passwordFile?: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        if (
          !/^\d{1,30}$/.test(opts.power) ||
          BigInt(opts.power) === 0n ||
          BigInt(opts.power) > MAX_MODEL_POWER
        )
          throw new UncError('BAD_ARGUMENT', `--power must be an integer 1…${MAX_MODEL_POWER}`);
        // setModel writes the whole record, name included: without --model-name the model keeps the
        // name it has (a power change must not rename "NVIDIA H100 SXM5" to its id); a new one is named by its id.
        const current = await registeredModel(ctx, opts.vendor, opts.model);
        const { hash, height } = await sendGovernance(ctx, opts.from, opts.passwordFile, [
          {
            type: 'setModel',
            model: {
              vendorId: opts.vendor,
              modelId: opts.model,
              name: opts.modelName ?? current?.name ?? opts.model,
              power: BigInt(opts.power),
            },
          },
        ]);
        ctx.print(
          { hash, height, vendorId: opts.vendor, modelId: opts.model, power: opts.power },
          () =>
            `model ${opts.vendor}/${opts.model} rated ${opts.power} at height ${height}, in force from the next epoch (tx ${hash})`,
        );
      },
    );

  vendor
    .command('remove-model')
    .description('remove a chip model: every chip of it stops at once (revoked)')
    .requiredOption('--vendor <id>', 'vendor id')
    .requiredOption('--model <id>', 'chip model id')
    .requiredOption('--from <key>', 'governance key in the keyring')
    .option('--password-file <file>', "the governance key's password")
    .action(
      async (opts: { vendor: string; model: string; from: string; passwordFile?: string }, cmd: Command) => {
        const ctx = ctxOf(cmd);
        // The chain refuses to remove a model it does not hold (UNKNOWN_MODEL): say so before signing.
        if (!(await registeredModel(ctx, opts.vendor, opts.model)))
          throw new UncError('UNKNOWN_MODEL', `model ${opts.vendor}/${opts.model} is not registered`);
        const { hash, height } = await sendGovernance(ctx, opts.from, opts.passwordFile, [
          { type: 'removeModel', vendorId: opts.vendor, modelId: opts.model },
        ]);
        ctx.print(
          { hash, height, vendorId: opts.vendor, modelId: opts.model },
          () => `removed model ${opts.vendor}/${opts.model} at height ${height} (tx ${hash})`,
        );
      },
    );

  return vendor;
}
