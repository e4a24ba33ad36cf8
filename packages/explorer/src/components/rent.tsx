/**
 * Renting a chip from the browser: the renter loads a keystore file and types its password (or, on
 * a dev chain only, picks a dev key), the form checks the offer and the balance, shows what will be
 * signed (chain id, node, deposit, fee, in UNC), and only then signs, here, with the browser sdk.
 * The key and the password never leave the page: the node receives the signed transaction alone.
 */
import { useEffect, useState } from 'react';
import { formatUncExact } from '../format';
import { useWatcher } from '../node/context';
import { href, paths } from '../router';
import {
  checkFunds,
  checkLeaseTerms,
  describeOfferTerms,
  devSigner,
  encodeSigned,
  keystoreSigner,
  type OfferJson,
  offerTermsDigest,
  openLeaseAction,
  prepareTransaction,
  recordBurnOf,
  type Signer,
  signedHash,
  signerAddress,
  type TxEventJson,
  type UncClient,
} from '../sdk';
import { LeaseLink, OfferLink } from './market';
import { AddrLink, Amount, Card, ChainText, KV, Row, TxLink } from './ui';

/** Dev accounts `unc dev` funds (packages/node/src/dev.ts, DEV_ACCOUNT_COUNT). */
const DEV_KEYS = Array.from({ length: 10 }, (_, i) => `dev${i}`);

type Transaction = Awaited<ReturnType<typeof prepareTransaction>>;

interface Review {
  signer: Signer;
  tx: Transaction;
  renter: string;
  balance: bigint;
  escrow: bigint;
  /** Burned for the lease's record on top of the fee (sdk recordBurnOf). */
  burn: bigint;
  hours: number;
  chipId: string | undefined;
  offer: OfferJson;
  /** offerTermsDigest(offer), as signed in `tx`. */
  termsDigest: Uint8Array;
}

type Phase =
  | { kind: 'form' }
  | { kind: 'checking' }
  | { kind: 'review'; review: Review }
  | { kind: 'sending'; review: Review; hash?: string }
  | { kind: 'done'; leaseId: string; hash: string; height: number };

/** What went wrong, in words a renter can act on. */
function problem(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'WRONG_PASSWORD') return 'Wrong password for this keystore file (or the file is damaged).';
  if (e?.code === 'BAD_KEYSTORE') return `This is not a keystore file UtilityNet can read: ${e.message}`;
  return e?.message ?? String(err);
}

/** The signer the form describes; the password is used here and nowhere else. */
function unlock(
  source: 'keystore' | 'dev',
  keystore: unknown,
  password: string,
  devIndex: number,
  devChain: boolean,
): Signer {
  if (source === 'dev') {
    // The dev keys are public: only a dev chain (one that says so) may be offered them.
    if (!devChain) throw new Error('Dev keys sign only on a dev chain; this node is not one.');
    return devSigner(devIndex);
  }
  if (keystore === null) throw new Error('Load a keystore file first (unc keys export NAME --out FILE).');
  return keystoreSigner(keystore, password);
}

async function check(
  client: UncClient,
  offerId: string,
  hours: number,
  chipId: string | undefined,
  signer: Signer,
): Promise<Review> {
  // The offer as the node has it now, not as the table last showed it.
  const offer = await client.getOffer(offerId);
  const escrow = checkLeaseTerms(offer, hours, chipId, undefined);
  const renter = signerAddress(signer);
  if (renter === offer.provider)
    throw new Error('This key is the offer’s provider: a provider cannot rent its own chips.');
  // Computed once: signed below, and shown on the review (describeOfferTerms) as the one signed.
  const termsDigest = offerTermsDigest(offer);
  const tx = await prepareTransaction(client, signer.publicKey, [
    // The deposit shown is signed, never left 0 ("price × hours" at the chain's price): the offer
    // and its price are the node's word (any node, with ?rpc=), and a hostile one could show a cheap
    // offer whose real price then took the balance. Signed explicitly, at most what was shown leaves it;
    // the price shown is signed as the most accepted, so that deposit is not spent at a higher price.
    openLeaseAction(offer.id, hours, {
      ...(chipId ? { chipId } : {}),
      deposit: escrow,
      maxPricePerHour: BigInt(offer.price),
      // The offer's other terms, as the review shows them, are signed too: the chain refuses the
      // lease (OFFER_CHANGED) rather than open it on a notice, endpoint or hardware not shown.
      termsDigest,
    }),
  ]);
  const [balance, params] = await Promise.all([client.balance(renter), client.getParams()]);
  // The chain burns this for the lease's record, on top of the fee: the node refuses a lease the
  // balance cannot pay it for, so it is checked and shown here.
  const burn = await recordBurnOf(client, tx.actions, BigInt(params.minFeePerAction));
  checkFunds({ from: renter, balance, spend: escrow, fee: tx.fee, burn });
  return { signer, tx, renter, balance, escrow, burn, hours, chipId, offer, termsDigest };
}

export function RentCard({ offer, onClose }: { offer: OfferJson; onClose: () => void }) {
  const { client } = useWatcher();
  const [devChain, setDevChain] = useState<boolean | null>(null);
  const [source, setSource] = useState<'keystore' | 'dev'>('keystore');
  const [keystore, setKeystore] = useState<unknown>(null);
  const [keystoreName, setKeystoreName] = useState('');
  const [password, setPassword] = useState('');
  const [devIndex, setDevIndex] = useState(2);
  const [hours, setHours] = useState(String(Math.max(1, offer.minHours)));
  const [chipId, setChipId] = useState('');
  const [phase, setPhase] = useState<Phase>({ kind: 'form' });
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    client
      ?.getParams()
      .then((p) => setDevChain(p.devChain))
      .catch(() => setDevChain(false));
  }, [client]);

  const loadKeystore = async (file: File | undefined) => {
    setError(null);
    setKeystore(null);
    setKeystoreName('');
    if (!file) return;
    try {
      setKeystore(JSON.parse(await file.text()));
      setKeystoreName(file.name);
    } catch {
      setError(`${file.name} is not JSON: a keystore file is what \`unc keys export\` writes.`);
    }
  };

  const review = async () => {
    if (!client) return;
    setError(null);
    const h = Number(hours);
    if (!/^\d+$/.test(hours.trim()) || !Number.isSafeInteger(h)) {
      setError(`“${hours}” is not a whole number of hours.`);
      return;
    }
    setPhase({ kind: 'checking' });
    try {
      // scrypt takes a moment: let the "Checking…" state paint first.
      await new Promise((r) => setTimeout(r, 0));
      const signer = unlock(source, keystore, password, devIndex, devChain === true);
      setPassword('');
      setPhase({ kind: 'review', review: await check(client, offer.id, h, chipId || undefined, signer) });
    } catch (err) {
      setError(problem(err));
      setPhase({ kind: 'form' });
    }
  };

  const sign = async (r: Review) => {
    if (!client) return;
    setError(null);
    setPhase({ kind: 'sending', review: r });
    try {
      const stx = await r.signer.signTransaction(r.tx);
      const hash = signedHash(stx);
      setPhase({ kind: 'sending', review: r, hash });
      await client.sendRawTransaction(encodeSigned(stx));
      const inclusion = await client.waitForTransaction(hash, 60_000);
      if (inclusion.status !== 'included')
        throw new Error(`The chain dropped the transaction: ${inclusion.reason} (${inclusion.code}).`);
      const receipt = await client.getTransaction(hash);
      const opened = receipt.events.find(
        (e): e is Extract<TxEventJson, { type: 'leaseOpened' }> => e.type === 'leaseOpened',
      );
      if (!opened) throw new Error(`Transaction ${hash} was included but opened no lease.`);
      setPhase({ kind: 'done', leaseId: opened.leaseId, hash, height: inclusion.height });
    } catch (err) {
      setError(problem(err));
      setPhase({ kind: 'review', review: r });
    }
  };

  const freeChips = offer.chips.filter((c) => c.available);
  const busy = phase.kind === 'checking' || phase.kind === 'sending';

  return (
    <Card
      title="Rent a chip"
      subtitle={
        <>
          Offer <OfferLink id={offer.id} /> · signed in this browser: the key and its password never leave it
        </>
      }
      testId="rent-card"
      actions={
        <button type="button" className="btn btn-ghost btn-small" onClick={onClose} data-testid="rent-close">
          Close
        </button>
      }
    >
      {phase.kind === 'form' || phase.kind === 'checking' ? (
        <div className="rent-form">
          <label>
            <span>Sign with</span>
            <select
              className="select"
              data-testid="rent-source"
              value={source}
              disabled={busy}
              onChange={(e) => setSource(e.target.value as 'keystore' | 'dev')}
            >
              <option value="keystore">A keystore file</option>
              {devChain ? <option value="dev">A dev key (dev chain only)</option> : null}
            </select>
          </label>
          {source === 'keystore' ? (
            <>
              <label>
                <span>
                  Keystore file {keystoreName ? <span className="muted">({keystoreName})</span> : null}
                </span>
                <input
                  type="file"
                  accept=".json,application/json"
                  data-testid="rent-keystore"
                  disabled={busy}
                  onChange={(e) => loadKeystore(e.target.files?.[0])}
                />
              </label>
              <label>
                <span>Password</span>
                <input
                  className="input"
                  type="password"
                  autoComplete="off"
                  data-testid="rent-password"
                  value={password}
                  disabled={busy}
                  onChange={(e) => setPassword(e.target.value)}
                />
              </label>
            </>
          ) : (
            <label>
              <span>Dev key</span>
              <select
                className="select"
                data-testid="rent-dev-key"
                value={devIndex}
                disabled={busy}
                onChange={(e) => setDevIndex(Number(e.target.value))}
              >
                {DEV_KEYS.map((name, i) => (
                  <option key={name} value={i}>
                    {name}
                  </option>
                ))}
              </select>
            </label>
          )}
          <label>
            <span>
              Hours ({Math.max(1, offer.minHours)}…{offer.maxHours})
            </span>
            <input
              className="input input-small"
              inputMode="numeric"
              data-testid="rent-hours"
              value={hours}
              disabled={busy}
              onChange={(e) => setHours(e.target.value)}
            />
          </label>
          <label>
            <span>Chip</span>
            <select
              className="select"
              data-testid="rent-chip"
              value={chipId}
              disabled={busy}
              onChange={(e) => setChipId(e.target.value)}
            >
              <option value="">Any free chip ({freeChips.length} free)</option>
              {offer.chips.map((c) => (
                <option key={c.chipId} value={c.chipId}>
                  {c.chipId.slice(0, 16)}… {c.available ? '' : '(busy)'}
                </option>
              ))}
            </select>
          </label>
          <div className="rent-buttons">
            <button type="button" className="btn" data-testid="rent-review" disabled={busy} onClick={review}>
              {phase.kind === 'checking' ? 'Checking…' : 'Review'}
            </button>
          </div>
        </div>
      ) : null}

      {phase.kind === 'review' || phase.kind === 'sending' ? (
        <div data-testid="rent-confirm">
          <KV>
            <Row label="Chain">
              <span className="mono" data-testid="rent-chain-id">
                <ChainText text={phase.review.tx.chainId} />
              </span>
            </Row>
            <Row label="Node">
              <span className="mono">{client?.url}</span>
            </Row>
            <Row label="Renter">
              <AddrLink address={phase.review.renter} short={false} />
            </Row>
            <Row label="Lease">
              {phase.review.chipId ? `chip ${phase.review.chipId.slice(0, 16)}…` : 'a free chip'} for{' '}
              {phase.review.hours} h at <Amount value={phase.review.offer.price} maxFrac={18} /> per hour
            </Row>
            <Row label="Terms">
              <pre className="mono terms" data-testid="rent-terms">
                {describeOfferTerms(phase.review.offer, phase.review.termsDigest).join('\n')}
              </pre>
            </Row>
            <Row label="Deposit">
              <span data-testid="rent-deposit">{formatUncExact(phase.review.escrow)} UNC</span>
              <span className="muted"> into escrow; unused time is refunded</span>
            </Row>
            <Row label="Fee">
              <span data-testid="rent-fee">{formatUncExact(phase.review.tx.fee)} UNC</span>
            </Row>
            <Row label="Burned">
              <span data-testid="rent-burn">{formatUncExact(phase.review.burn)} UNC</span>
              <span className="muted"> for the lease's record, which every node keeps</span>
            </Row>
            <Row label="Total">
              <span data-testid="rent-total">
                {formatUncExact(phase.review.escrow + phase.review.tx.fee + phase.review.burn)} UNC
              </span>
              <span className="muted">
                {' '}
                of {formatUncExact(phase.review.balance)} UNC held; leaves{' '}
                {formatUncExact(
                  phase.review.balance - phase.review.escrow - phase.review.tx.fee - phase.review.burn,
                )}{' '}
                UNC
              </span>
            </Row>
          </KV>
          <div className="rent-buttons">
            <button
              type="button"
              className="btn"
              data-testid="rent-sign"
              disabled={phase.kind === 'sending'}
              onClick={() => sign(phase.review)}
            >
              {phase.kind === 'sending' ? 'Signing and sending…' : 'Sign and open the lease'}
            </button>
            <button
              type="button"
              className="btn btn-ghost"
              data-testid="rent-back"
              disabled={phase.kind === 'sending'}
              onClick={() => setPhase({ kind: 'form' })}
            >
              Back
            </button>
          </div>
          {phase.kind === 'sending' && phase.hash ? (
            <p className="muted">
              Sent <TxLink hash={phase.hash} />; waiting for its block…
            </p>
          ) : null}
        </div>
      ) : null}

      {phase.kind === 'done' ? (
        <div data-testid="rent-done">
          <p>
            Lease <LeaseLink id={phase.leaseId} /> opened in block {phase.height} by transaction{' '}
            <TxLink hash={phase.hash} />.
          </p>
          <a className="btn" href={href(paths.lease(phase.leaseId))} data-testid="rent-lease-link">
            Open the lease
          </a>
        </div>
      ) : null}

      {error ? (
        <p className="form-error" role="alert" data-testid="rent-error">
          <ChainText text={error} />
        </p>
      ) : null}
    </Card>
  );
}
