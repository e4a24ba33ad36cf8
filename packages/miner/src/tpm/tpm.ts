/**
 * A TPM 2.0 driver that speaks the command protocol itself (TPM 2.0 Library Part 3), so a miner
 * needs no TSS or tpm2-tools installed. Authorization is by password session (TPM_RS_PW) only:
 * the miner's keys have empty auth values and live only while a command sequence runs, and every
 * transient object it creates is flushed before the sequence ends.
 */
import { DecodeError, Reader, type Writer } from '@unc/core';
import { TPM_ALG, TPM_CAP, TPM_CC, TPM_HT, TPM_PT, TPM_RH, TPM_ST, TPM_SU } from './constants.js';
import { TpmError, TpmProtocolError } from './errors.js';
import {
  marshal,
  type PcrSelection,
  readPcrSelections,
  readTpm2b,
  unmarshal,
  writePcrSelections,
  writeTpm2b,
} from './marshal.js';
import {
  type AkAlgorithm,
  akTemplate,
  marshalPublic,
  parseAttest,
  parseSignature,
  publicKeyToSpki,
  type Scheme,
  type TpmtPublic,
  unmarshalPublic,
} from './structures.js';
import type { TpmTransport } from './transport/transport.js';

const RC_INITIALIZE = 0x100;
/**
 * Warnings that mean "the command did not run, send it again" (Part 2 §6.6.3): TPM_RC_RETRY,
 * TPM_RC_YIELDED and TPM_RC_TESTING. Every TSS retries them, and libtpms does answer RETRY now
 * and then (e.g. to a quote right after start-up).
 */
const RETRYABLE = new Set([0x922, 0x908, 0x90a]);
const MAX_RETRIES = 20;

export type Hierarchy = 'endorsement' | 'owner' | 'platform' | 'null';

export const HIERARCHY_HANDLES: Readonly<Record<Hierarchy, number>> = {
  endorsement: TPM_RH.ENDORSEMENT,
  owner: TPM_RH.OWNER,
  platform: TPM_RH.PLATFORM,
  null: TPM_RH.NULL,
};

/** A key loaded in the TPM, with its public part in the forms callers need. */
export interface LoadedKey {
  readonly handle: number;
  readonly public: TpmtPublic;
  /** Marshalled TPMT_PUBLIC. */
  readonly publicArea: Uint8Array;
  /** Marshalled TPM2B_PUBLIC (what `tpm2_readpublic -f tss -o` writes). */
  readonly tpm2bPublic: Uint8Array;
  /** The key as X.509 SubjectPublicKeyInfo DER, the form certificates and node:crypto take. */
  readonly spki: Uint8Array;
  /** nameAlg ‖ H(TPMT_PUBLIC). */
  readonly name: Uint8Array;
}

/** What TPM2_ReadPublic says about a loaded object. */
export interface PublicInfo extends LoadedKey {
  /** What every TPMS_ATTEST the object signs names as its qualifiedSigner. */
  readonly qualifiedName: Uint8Array;
}

/** A signed attestation exactly as the TPM produced it. */
export interface Attestation {
  /** Marshalled TPMS_ATTEST (what `tpm2_quote -m` / `tpm2_gettime --attestation` write). */
  readonly attest: Uint8Array;
  /** Marshalled TPMT_SIGNATURE (what `tpm2_quote -s` / `tpm2_gettime -o` write by default). */
  readonly signature: Uint8Array;
}

export interface NvPublic {
  readonly nvIndex: number;
  readonly nameAlg: number;
  readonly attributes: number;
  readonly authPolicy: Uint8Array;
  readonly dataSize: number;
  readonly name: Uint8Array;
}

/** Fixed facts about the TPM, from TPM2_GetCapability(TPM_PROPERTIES). */
export interface TpmInfo {
  readonly manufacturer: string;
  readonly vendorString: string;
  readonly firmwareVersion: bigint;
  readonly family: string;
}

interface CommandSpec {
  readonly handles?: readonly number[];
  /** One password per authorized handle, in handle order; absent for commands without sessions. */
  readonly auths?: readonly Uint8Array[];
  readonly params?: (w: Writer) => void;
  /** How many handles the response carries before its parameters. */
  readonly responseHandles?: number;
}

interface CommandResult {
  readonly handles: number[];
  readonly params: Reader;
}

const EMPTY = new Uint8Array(0);
const MAX_QUALIFYING_DATA = 64;
const NV_CHUNK = 512;

function hierarchyHandle(h: Hierarchy | number): number {
  return typeof h === 'number' ? h : HIERARCHY_HANDLES[h];
}

function fourCc(value: number): string {
  let s = '';
  for (let shift = 24; shift >= 0; shift -= 8) {
    const c = (value >>> shift) & 0xff;
    if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
  }
  return s.trim();
}

export class Tpm {
  readonly transport: TpmTransport;
  private queue: Promise<unknown> = Promise.resolve();
  /** How many commands the TPM asked to have sent again (TPM_RC_RETRY and the like). */
  retries = 0;

  constructor(transport: TpmTransport) {
    this.transport = transport;
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /**
   * TPM2_Startup. Returns false when the TPM was already started (TPM_RC_INITIALIZE), which is
   * the normal case on a real machine where firmware started it long ago.
   */
  async startup(type: 'clear' | 'state' = 'clear'): Promise<boolean> {
    try {
      await this.execute(TPM_CC.Startup, {
        params: (w) => w.u16(type === 'clear' ? TPM_SU.CLEAR : TPM_SU.STATE),
      });
      return true;
    } catch (err) {
      if (err instanceof TpmError && err.rc === RC_INITIALIZE) return false;
      throw err;
    }
  }

  /** TPM2_Shutdown. `state` preserves the session and PCR state for a Startup(STATE) resume. */
  async shutdown(type: 'clear' | 'state' = 'clear'): Promise<void> {
    await this.execute(TPM_CC.Shutdown, {
      params: (w) => w.u16(type === 'clear' ? TPM_SU.CLEAR : TPM_SU.STATE),
    });
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    await this.transport.close();
  }

  // ---- information ---------------------------------------------------------------------------

  /** TPM2_GetRandom, repeated until `count` bytes arrive (a TPM returns at most one digest's worth). */
  async getRandom(count: number): Promise<Uint8Array> {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`bad byte count ${count}`);
    const out = new Uint8Array(count);
    for (let filled = 0; filled < count; ) {
      const want = Math.min(count - filled, 64);
      const { params } = await this.execute(TPM_CC.GetRandom, { params: (w) => w.u16(want) });
      const bytes = readTpm2b(params, 'randomBytes', want);
      params.end('TPM2_GetRandom response');
      if (bytes.length === 0) throw new TpmProtocolError('TPM2_GetRandom returned no bytes');
      out.set(bytes, filled);
      filled += bytes.length;
    }
    return out;
  }

  /** Handles of one type (TPM_HT_*) currently in the TPM, via TPM2_GetCapability(TPM_CAP_HANDLES). */
  async getHandles(type: number): Promise<number[]> {
    const handles: number[] = [];
    let next = (type << 24) >>> 0;
    for (;;) {
      const { params } = await this.execute(TPM_CC.GetCapability, {
        params: (w) => {
          w.u32(TPM_CAP.HANDLES);
          w.u32(next);
          w.u32(64);
        },
      });
      const more = params.u8('moreData');
      const cap = params.u32('capability');
      if (cap !== TPM_CAP.HANDLES) throw new TpmProtocolError(`GetCapability returned capability ${cap}`);
      const count = params.u32('handle count');
      const batch: number[] = [];
      for (let i = 0; i < count; i++) batch.push(params.u32('handle'));
      params.end('TPM2_GetCapability response');
      const mine = batch.filter((h) => h >>> 24 === type);
      handles.push(...mine);
      if (!more || mine.length === 0 || mine.length < batch.length) return handles;
      next = mine[mine.length - 1]! + 1;
    }
  }

  /** Handles of transient objects currently loaded: empty whenever the miner is idle. */
  transientHandles(): Promise<number[]> {
    return this.getHandles(TPM_HT.TRANSIENT);
  }

  /** TPM properties (TPM_PT_*) from `first`, via TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES). */
  async getProperties(first: number, count: number): Promise<Map<number, number>> {
    const { params } = await this.execute(TPM_CC.GetCapability, {
      params: (w) => {
        w.u32(TPM_CAP.TPM_PROPERTIES);
        w.u32(first);
        w.u32(count);
      },
    });
    params.u8('moreData');
    const cap = params.u32('capability');
    if (cap !== TPM_CAP.TPM_PROPERTIES)
      throw new TpmProtocolError(`GetCapability returned capability ${cap}`);
    const n = params.u32('property count');
    const out = new Map<number, number>();
    for (let i = 0; i < n; i++) out.set(params.u32('property'), params.u32('value'));
    params.end('TPM2_GetCapability response');
    return out;
  }

  async info(): Promise<TpmInfo> {
    const p = await this.getProperties(
      TPM_PT.FAMILY_INDICATOR,
      TPM_PT.FIRMWARE_VERSION_2 - TPM_PT.FAMILY_INDICATOR + 1,
    );
    const get = (pt: number) => p.get(pt) ?? 0;
    return {
      family: fourCc(get(TPM_PT.FAMILY_INDICATOR)),
      manufacturer: fourCc(get(TPM_PT.MANUFACTURER)),
      vendorString: [
        TPM_PT.VENDOR_STRING_1,
        TPM_PT.VENDOR_STRING_2,
        TPM_PT.VENDOR_STRING_3,
        TPM_PT.VENDOR_STRING_4,
      ]
        .map((pt) => fourCc(get(pt)))
        .join(''),
      firmwareVersion:
        (BigInt(get(TPM_PT.FIRMWARE_VERSION_1)) << 32n) | BigInt(get(TPM_PT.FIRMWARE_VERSION_2)),
    };
  }

  /** TPM2_PCR_Read: the selection the TPM actually served and one digest per selected PCR. */
  async pcrRead(
    selections: readonly PcrSelection[],
  ): Promise<{ updateCounter: number; selections: PcrSelection[]; digests: Uint8Array[] }> {
    const { params } = await this.execute(TPM_CC.PCR_Read, {
      params: (w) => writePcrSelections(w, selections),
    });
    const updateCounter = params.u32('pcrUpdateCounter');
    const served = readPcrSelections(params);
    const count = params.u32('TPML_DIGEST count');
    if (count > 8) throw new DecodeError(`TPML_DIGEST count ${count} is implausible`);
    const digests: Uint8Array[] = [];
    for (let i = 0; i < count; i++) digests.push(readTpm2b(params, 'PCR digest', 64));
    params.end('TPM2_PCR_Read response');
    return { updateCounter, selections: served, digests };
  }

  // ---- objects -------------------------------------------------------------------------------

  /**
   * TPM2_CreatePrimary. A primary key is derived from the hierarchy's seed and the template, so
   * the same TPM always gives the same key for the same template: the AK needs no storage.
   */
  async createPrimary(opts: {
    template: TpmtPublic;
    hierarchy?: Hierarchy | number;
    hierarchyAuth?: Uint8Array;
    userAuth?: Uint8Array;
  }): Promise<LoadedKey> {
    const templateBytes = marshalPublic(opts.template);
    const { handles, params } = await this.execute(TPM_CC.CreatePrimary, {
      handles: [hierarchyHandle(opts.hierarchy ?? 'endorsement')],
      auths: [opts.hierarchyAuth ?? EMPTY],
      responseHandles: 1,
      params: (w) => {
        writeSensitiveCreate(w, opts.userAuth ?? EMPTY);
        writeTpm2b(w, templateBytes);
        writeTpm2b(w, EMPTY); // outsideInfo
        writePcrSelections(w, []); // creationPCR
      },
    });
    const handle = handles[0]!;
    try {
      const publicArea = readTpm2b(params, 'outPublic');
      skipCreationOutputs(params);
      const name = readTpm2b(params, 'name', 70);
      params.end('TPM2_CreatePrimary response');
      return loadedKey(handle, publicArea, name);
    } catch (err) {
      await this.flushContext(handle).catch(() => undefined);
      throw err;
    }
  }

  /** TPM2_Create: a child key of `parent`, returned wrapped (TPM2B_PRIVATE contents) for TPM2_Load. */
  async create(
    parent: number,
    template: TpmtPublic,
    opts: { parentAuth?: Uint8Array; userAuth?: Uint8Array } = {},
  ): Promise<{ privateBlob: Uint8Array; publicArea: Uint8Array }> {
    const templateBytes = marshalPublic(template);
    const { params } = await this.execute(TPM_CC.Create, {
      handles: [parent],
      auths: [opts.parentAuth ?? EMPTY],
      params: (w) => {
        writeSensitiveCreate(w, opts.userAuth ?? EMPTY);
        writeTpm2b(w, templateBytes);
        writeTpm2b(w, EMPTY);
        writePcrSelections(w, []);
      },
    });
    const privateBlob = readTpm2b(params, 'outPrivate');
    const publicArea = readTpm2b(params, 'outPublic');
    skipCreationOutputs(params);
    params.end('TPM2_Create response');
    unmarshalPublic(publicArea);
    return { privateBlob, publicArea };
  }

  /** TPM2_Load: loads a key made by `create` under the same parent. */
  async load(
    parent: number,
    privateBlob: Uint8Array,
    publicArea: Uint8Array,
    opts: { parentAuth?: Uint8Array } = {},
  ): Promise<LoadedKey> {
    const { handles, params } = await this.execute(TPM_CC.Load, {
      handles: [parent],
      auths: [opts.parentAuth ?? EMPTY],
      responseHandles: 1,
      params: (w) => {
        writeTpm2b(w, privateBlob);
        writeTpm2b(w, publicArea);
      },
    });
    const handle = handles[0]!;
    try {
      const name = readTpm2b(params, 'name', 70);
      params.end('TPM2_Load response');
      return loadedKey(handle, publicArea, name);
    } catch (err) {
      await this.flushContext(handle).catch(() => undefined);
      throw err;
    }
  }

  /** TPM2_ReadPublic: the public area, Name and Qualified Name of a loaded object. */
  async readPublic(handle: number): Promise<PublicInfo> {
    const { params } = await this.execute(TPM_CC.ReadPublic, { handles: [handle] });
    const publicArea = readTpm2b(params, 'outPublic');
    const name = readTpm2b(params, 'name', 70);
    const qualifiedName = readTpm2b(params, 'qualifiedName', 70);
    params.end('TPM2_ReadPublic response');
    const key = loadedKey(handle, publicArea, name);
    return { ...key, qualifiedName };
  }

  /** TPM2_FlushContext: frees a transient object or session. */
  async flushContext(handle: number): Promise<void> {
    await this.execute(TPM_CC.FlushContext, { params: (w) => w.u32(handle) });
  }

  /**
   * Runs `use` with a freshly loaded object and flushes it afterwards whatever happens: the
   * try/finally that `using` would be, so a failed quote cannot leak one of the TPM's few object
   * slots (three on many chips).
   */
  async withObject<T>(
    load: Promise<LoadedKey> | (() => Promise<LoadedKey>),
    use: (key: LoadedKey) => Promise<T>,
  ): Promise<T> {
    const key = await (typeof load === 'function' ? load() : load);
    try {
      return await use(key);
    } finally {
      await this.flushContext(key.handle);
    }
  }

  /** Creates the attestation key (a primary key, by default in the endorsement hierarchy). */
  createAk(opts: { algorithm?: AkAlgorithm; hierarchy?: Hierarchy } = {}): Promise<LoadedKey> {
    return this.createPrimary({
      template: akTemplate(opts.algorithm),
      hierarchy: opts.hierarchy ?? 'endorsement',
    });
  }

  /** `use` with the AK loaded; the AK is flushed afterwards. */
  withAk<T>(
    opts: { algorithm?: AkAlgorithm; hierarchy?: Hierarchy },
    use: (ak: LoadedKey) => Promise<T>,
  ): Promise<T> {
    return this.withObject(() => this.createAk(opts), use);
  }

  // ---- attestation ---------------------------------------------------------------------------

  /**
   * TPM2_Quote: the TPM signs a TPMS_ATTEST holding `qualifyingData` (the message), its clock and
   * reset counters, and a digest of the selected PCRs (default sha256:0).
   */
  async quote(
    signHandle: number,
    qualifyingData: Uint8Array,
    opts: { pcrs?: readonly PcrSelection[]; auth?: Uint8Array; scheme?: Scheme } = {},
  ): Promise<Attestation> {
    checkQualifyingData(qualifyingData);
    const { params } = await this.execute(TPM_CC.Quote, {
      handles: [signHandle],
      auths: [opts.auth ?? EMPTY],
      params: (w) => {
        writeTpm2b(w, qualifyingData);
        writeSigScheme(w, opts.scheme);
        writePcrSelections(w, opts.pcrs ?? [{ hashAlg: TPM_ALG.SHA256, pcrs: [0] }]);
      },
    });
    return readAttestation(params, 'TPM2_Quote');
  }

  /**
   * TPM2_GetTime: the TPM signs its current time and clock with `qualifyingData`. The command needs
   * the privacy administrator's (endorsement hierarchy's) authorization as well as the key's.
   */
  async getTime(
    signHandle: number,
    qualifyingData: Uint8Array,
    opts: { auth?: Uint8Array; endorsementAuth?: Uint8Array; scheme?: Scheme } = {},
  ): Promise<Attestation> {
    checkQualifyingData(qualifyingData);
    const { params } = await this.execute(TPM_CC.GetTime, {
      handles: [TPM_RH.ENDORSEMENT, signHandle],
      auths: [opts.endorsementAuth ?? EMPTY, opts.auth ?? EMPTY],
      params: (w) => {
        writeTpm2b(w, qualifyingData);
        writeSigScheme(w, opts.scheme);
      },
    });
    return readAttestation(params, 'TPM2_GetTime');
  }

  // ---- NV ------------------------------------------------------------------------------------

  async nvReadPublic(nvIndex: number): Promise<NvPublic> {
    const { params } = await this.execute(TPM_CC.NV_ReadPublic, { handles: [nvIndex] });
    const nvPublic = readTpm2b(params, 'nvPublic');
    const name = readTpm2b(params, 'nvName', 70);
    params.end('TPM2_NV_ReadPublic response');
    return unmarshal(nvPublic, 'TPMS_NV_PUBLIC', (r) => ({
      nvIndex: r.u32('nvIndex'),
      nameAlg: r.u16('nameAlg'),
      attributes: r.u32('attributes'),
      authPolicy: readTpm2b(r, 'authPolicy', 64),
      dataSize: r.u16('dataSize'),
      name,
    }));
  }

  /**
   * TPM2_NV_Read of a whole index (or `size` bytes from `offset`), in chunks the TPM accepts.
   * Authorizes with the index's own password by default; pass `authHandle: 'owner'` for indices
   * readable by the owner (such as vendor-provisioned certificates).
   */
  async nvRead(
    nvIndex: number,
    opts: { offset?: number; size?: number; authHandle?: 'index' | Hierarchy; auth?: Uint8Array } = {},
  ): Promise<Uint8Array> {
    const offset = opts.offset ?? 0;
    const size = opts.size ?? (await this.nvReadPublic(nvIndex)).dataSize - offset;
    const authHandle =
      opts.authHandle === undefined || opts.authHandle === 'index'
        ? nvIndex
        : hierarchyHandle(opts.authHandle);
    const out = new Uint8Array(size);
    for (let done = 0; done < size; ) {
      const chunk = Math.min(NV_CHUNK, size - done);
      const { params } = await this.execute(TPM_CC.NV_Read, {
        handles: [authHandle, nvIndex],
        auths: [opts.auth ?? EMPTY],
        params: (w) => {
          w.u16(chunk);
          w.u16(offset + done);
        },
      });
      const data = readTpm2b(params, 'NV data', chunk);
      params.end('TPM2_NV_Read response');
      if (data.length !== chunk)
        throw new TpmProtocolError(`TPM2_NV_Read returned ${data.length} of ${chunk} bytes`);
      out.set(data, done);
      done += chunk;
    }
    return out;
  }

  // ---- the command protocol ------------------------------------------------------------------

  /** Commands are serialised: a TPM executes one at a time and a stream cannot interleave them. */
  private execute(commandCode: number, spec: CommandSpec): Promise<CommandResult> {
    const result = this.queue.then(() => this.exchange(commandCode, spec));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async exchange(commandCode: number, spec: CommandSpec): Promise<CommandResult> {
    const handles = spec.handles ?? [];
    const auths = spec.auths;
    const body = marshal((w) => {
      for (const h of handles) w.u32(h);
      if (auths) {
        const area = marshal((a) => {
          for (const password of auths) {
            a.u32(TPM_RH.PW);
            writeTpm2b(a, EMPTY); // nonceCaller: none for a password session
            a.u8(0); // sessionAttributes
            writeTpm2b(a, password);
          }
        });
        w.u32(area.length);
        w.raw(area);
      }
      spec.params?.(w);
    });
    const command = marshal((w) => {
      w.u16(auths ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
      w.u32(10 + body.length);
      w.u32(commandCode);
      w.raw(body);
    });

    for (let attempt = 0; ; attempt++) {
      const response = await this.transport.send(command);
      try {
        return parseResponse(commandCode, response, spec.responseHandles ?? 0, auths?.length ?? 0);
      } catch (err) {
        if (err instanceof TpmError && RETRYABLE.has(err.rc) && attempt < MAX_RETRIES) {
          this.retries++;
          await new Promise((resolve) => setTimeout(resolve, Math.min(5 * 2 ** attempt, 200)));
          continue;
        }
        if (err instanceof DecodeError) {
          throw new TpmProtocolError(`malformed ${commandName(commandCode)} response: ${err.message}`, {
            cause: err,
          });
        }
        throw err;
      }
    }
  }
}

function commandName(cc: number): string {
  for (const [name, code] of Object.entries(TPM_CC)) if (code === cc) return `TPM2_${name}`;
  return `command 0x${cc.toString(16)}`;
}

function parseResponse(
  commandCode: number,
  response: Uint8Array,
  handleCount: number,
  sessionCount: number,
): CommandResult {
  const r = new Reader(response);
  const tag = r.u16('response tag');
  const size = r.u32('responseSize');
  const rc = r.u32('responseCode');
  if (size !== response.length)
    throw new TpmProtocolError(`response size field ${size} but ${response.length} bytes arrived`);
  if (rc !== 0) throw new TpmError(commandCode, rc);
  const expectedTag = sessionCount > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  if (tag !== expectedTag)
    throw new TpmProtocolError(`response tag 0x${tag.toString(16)}, expected 0x${expectedTag.toString(16)}`);
  const handles: number[] = [];
  for (let i = 0; i < handleCount; i++) handles.push(r.u32('response handle'));
  if (sessionCount === 0) return { handles, params: new Reader(r.raw(r.remaining, 'parameters')) };
  const paramSize = r.u32('parameterSize');
  const params = new Reader(r.raw(paramSize, 'parameters'));
  // The response auth area must be well formed even though a password session's carries nothing we check.
  for (let i = 0; i < sessionCount; i++) {
    readTpm2b(r, 'nonceTPM');
    r.u8('sessionAttributes');
    readTpm2b(r, 'response hmac');
  }
  r.end('response authorization area');
  return { handles, params };
}

function writeSensitiveCreate(w: Writer, userAuth: Uint8Array): void {
  // TPM2B_SENSITIVE_CREATE { TPMS_SENSITIVE_CREATE { userAuth, data } }; data is empty for asymmetric keys.
  writeTpm2b(
    w,
    marshal((s) => {
      writeTpm2b(s, userAuth);
      writeTpm2b(s, EMPTY);
    }),
  );
}

/** creationData, creationHash and creationTicket: checked for form, not kept. */
function skipCreationOutputs(r: Reader): void {
  readTpm2b(r, 'creationData');
  readTpm2b(r, 'creationHash', 64);
  r.u16('creationTicket tag');
  r.u32('creationTicket hierarchy');
  readTpm2b(r, 'creationTicket digest', 64);
}

function writeSigScheme(w: Writer, scheme: Scheme | undefined): void {
  // TPM_ALG_NULL lets the TPM use the key's own scheme, which an AK always has.
  const s = scheme ?? { scheme: TPM_ALG.NULL };
  w.u16(s.scheme);
  if (s.scheme !== TPM_ALG.NULL) w.u16(s.hashAlg ?? TPM_ALG.SHA256);
}

function checkQualifyingData(data: Uint8Array): void {
  if (data.length > MAX_QUALIFYING_DATA) {
    throw new RangeError(
      `qualifyingData is ${data.length} bytes; a TPM accepts at most ${MAX_QUALIFYING_DATA}`,
    );
  }
}

function readAttestation(params: Reader, what: string): Attestation {
  const attest = readTpm2b(params, 'TPM2B_ATTEST');
  // TPMT_SIGNATURE has no size prefix and is the last parameter: its extent is the rest.
  const signature = params.raw(params.remaining, 'TPMT_SIGNATURE');
  parseAttest(attest);
  parseSignature(signature);
  if (attest.length === 0) throw new TpmProtocolError(`${what} returned an empty attestation`);
  return { attest, signature };
}

function loadedKey(handle: number, publicArea: Uint8Array, name: Uint8Array): LoadedKey {
  const pub = unmarshalPublic(publicArea);
  const tpm2bPublic = marshal((w) => writeTpm2b(w, publicArea));
  return { handle, public: pub, publicArea, tpm2bPublic, spki: publicKeyToSpki(pub), name };
}
