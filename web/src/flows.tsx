// The three payment flows, each a `usePayment()` from @payments/client/react: the hook
// holds the idempotency key of the user's intent (a double click or a retry sends the same
// one), follows the transaction over WatchTransaction (reconnecting by itself), and hands
// over the 3DS client secret while the bank asks for it.

import { useEffect, useRef, useState, type FormEvent } from "react";
import { isSettled, statusName, type PaymentMethod, type Transaction } from "@payments/client";
import { usePayment, usePaymentsClient, type Connection, type PaymentState } from "@payments/client/react";
import { useErrors, useReportedError } from "./errors.js";
import { formatMoney, parseCents } from "./format.js";

export interface FlowProps {
  userId: string;
  stripeSimUrl: string;
  /** The user's card for a Stripe test token (see `useCards`). */
  cardFor(token: TestCard): Promise<PaymentMethod>;
  /** Read the wallet again (after a transaction settled: a read after an event, not a poll). */
  onSettled(tx: Transaction): void;
}

export const CARDS = {
  pm_card_threeDSecure2Required: "3D Secure card (the bank asks)",
  pm_card_visa: "Visa (no challenge)",
} as const;
export type TestCard = keyof typeof CARDS;

/**
 * The user's card for a Stripe test token, attached once per sign-in: two clicks share the
 * one AttachPaymentMethod, so both ask for the same payment.
 */
export function useCards(userId: string): (token: TestCard) => Promise<PaymentMethod> {
  const client = usePaymentsClient();
  const attached = useRef(new Map<string, Promise<PaymentMethod>>());
  return (token) => {
    let card = attached.current.get(token);
    if (!card) {
      card = client.attachPaymentMethod({ userId, paymentMethodId: token });
      card.catch(() => attached.current.delete(token));
      attached.current.set(token, card);
    }
    return card;
  };
}

/** Every version the stream delivered for the current transaction, and the settle callback. */
function usePaymentWithHistory(onSettled: (tx: Transaction) => void): [PaymentState, Transaction[]] {
  const [history, setHistory] = useState<Transaction[]>([]);
  const payment = usePayment({
    onUpdate: (tx) => {
      setHistory((h) => [...h.filter((seen) => seen.id === tx.id), tx]);
      if (isSettled(tx.status)) onSettled(tx);
    },
  });
  return [payment, history];
}

const STREAM_STATE: Record<Connection, string> = {
  idle: "",
  connecting: "open",
  live: "open",
  reconnecting: "reconnecting",
  ended: "ended",
};
const STREAM_TEXT: Record<Connection, string> = {
  idle: "",
  connecting: "● connecting",
  live: "● live",
  reconnecting: "↻ reconnecting…",
  ended: "ended",
};

/** The live list of statuses, the stream's state and the result. */
function Stream({ prefix, payment, history }: { prefix: string; payment: PaymentState; history: Transaction[] }) {
  const state = payment.error && payment.connection === "ended" ? "error" : STREAM_STATE[payment.connection];
  const name = statusName(payment.status);
  // Reconnects seen while this transaction was watched, for the page's visitors (and its test).
  const [reconnects, setReconnects] = useState(0);
  const id = payment.transaction?.id;
  useEffect(() => setReconnects(0), [id]);
  useEffect(() => {
    if (payment.connection === "reconnecting") setReconnects((n) => n + 1);
  }, [payment.connection]);
  return (
    <>
      <h3>
        Stream{" "}
        <span className="stream-state" data-testid={`${prefix}-stream-state`} data-state={state} data-reconnects={reconnects}>
          {state === "error" ? "broken" : STREAM_TEXT[payment.connection]}
          {reconnects > 0 && payment.connection !== "reconnecting" && ` (reconnected ×${reconnects})`}
        </span>
      </h3>
      <ol className="statuses" data-testid={`${prefix}-statuses`}>
        {history.map((tx) => {
          const s = statusName(tx.status);
          const at = tx.updatedAt ? new Date(Number(tx.updatedAt.seconds) * 1000).toLocaleTimeString() : "";
          return (
            <li key={tx.version.toString()} data-status={s} className={`status status-${s.toLowerCase()}`}>
              <span className="badge">{s}</span>
              <span className="meta">
                v{tx.version.toString()} · {formatMoney(tx.amount, tx.currency)}
                {at && ` · ${at}`}
              </span>
              {(tx.failureCode || tx.failureMessage) && (
                <span className="failure">{[tx.failureCode, tx.failureMessage].filter(Boolean).join(": ")}</span>
              )}
            </li>
          );
        })}
      </ol>
      <p className={`result result-${name.toLowerCase()}`} data-testid={`${prefix}-result`} data-status={payment.settled ? name : ""}>
        {payment.settled ? `Settled: ${name}` : ""}
      </p>
    </>
  );
}

/** 1 · A top-up by card: CreatePayment, then 3DS if the bank asks. */
export function TopUp({ userId, stripeSimUrl, cardFor, onSettled }: FlowProps) {
  const [payment, history] = usePaymentWithHistory(onSettled);
  const { report, clear } = useErrors();
  const [amount, setAmount] = useState("20.00");
  const [cardToken, setCardToken] = useState<TestCard>("pm_card_threeDSecure2Required");
  const [card, setCard] = useState<PaymentMethod>();
  const [answering, setAnswering] = useState(false);
  useReportedError("Top up", payment.error);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    clear();
    const cents = parseCents(amount);
    if (cents === null || cents <= 0n) return report("Top up", new Error("enter an amount such as 20.00"));
    try {
      const attached = await cardFor(cardToken);
      setCard(attached);
      await payment.createPayment({ userId, paymentMethodId: attached.id, amount: cents, currency: "usd" });
    } catch (err) {
      report("Top up", err);
    }
  };

  /** Answers the challenge as stripe.confirmCardPayment(clientSecret) would, on stripe-sim. */
  const answer3ds = async (outcome: "succeed" | "fail") => {
    const clientSecret = payment.clientSecret;
    if (!clientSecret) return;
    const paymentIntent = clientSecret.split("_secret_")[0] ?? "";
    setAnswering(true);
    try {
      const res = await fetch(`${stripeSimUrl}/test/payment_intents/${encodeURIComponent(paymentIntent)}/authenticate`, {
        method: "POST",
        body: new URLSearchParams({ outcome, client_secret: clientSecret }),
      });
      if (!res.ok) throw new Error(`3DS authenticate answered ${res.status}: ${await res.text()}`);
    } catch (err) {
      report("3D Secure", err);
    } finally {
      setAnswering(false);
    }
  };

  const tx = payment.transaction;
  return (
    <section className="card" data-testid="topup-card">
      <h2>
        <span className="step">1</span> Top up with a card
      </h2>
      <p className="muted">
        <code>CreatePayment</code> with an idempotency key kept for this intent (click twice: one payment), then the
        transaction as <code>WatchTransaction</code> pushes it, reconnecting by itself if the stream drops.
      </p>
      <form className="row" data-testid="topup-form" onSubmit={submit}>
        <label htmlFor="topup-amount">Amount (USD)</label>
        <input id="topup-amount" data-testid="topup-amount" type="number" min="5" step="0.01" value={amount} onChange={(e) => setAmount(e.target.value)} />
        <select data-testid="topup-card-select" value={cardToken} onChange={(e) => setCardToken(e.target.value as TestCard)}>
          {Object.entries(CARDS).map(([token, label]) => (
            <option key={token} value={token}>
              {label}
            </option>
          ))}
        </select>
        <button type="submit" data-testid="topup">
          {payment.submitting ? "Paying…" : "Top up"}
        </button>
      </form>
      {tx && (
        <dl className="facts" data-testid="topup-facts">
          <dt>Card</dt>
          <dd data-testid="topup-card-info">{card && `${card.brand || "card"} •••• ${card.last4} (${card.id})`}</dd>
          <dt>Transaction</dt>
          <dd>
            <code data-testid="topup-transaction-id">{tx.id}</code>
          </dd>
          <dt>PaymentIntent</dt>
          <dd>
            <code data-testid="topup-payment-intent">{tx.stripePaymentIntentId || "—"}</code>
          </dd>
          <dt>Idempotency key</dt>
          <dd>
            <code data-testid="topup-idempotency-key">{payment.idempotencyKey}</code>
          </dd>
        </dl>
      )}
      <div className="challenge" data-testid="challenge" hidden={!payment.clientSecret}>
        <p>
          <strong>Your bank asks you to confirm this payment.</strong> In production{" "}
          <code>stripe.confirmCardPayment(clientSecret)</code> shows this challenge; here the buttons answer stripe-sim's
          3DS test endpoint.
        </p>
        <button type="button" data-testid="complete-3ds" disabled={answering} onClick={() => answer3ds("succeed")}>
          Complete 3D Secure
        </button>
        <button type="button" className="secondary" data-testid="fail-3ds" disabled={answering} onClick={() => answer3ds("fail")}>
          Fail 3D Secure
        </button>
      </div>
      <Stream prefix="topup" payment={payment} history={history} />
    </section>
  );
}

/** 2 · A promotion code redeemed as wallet credit: ApplyCoupon. */
export function Coupon({ userId, onSettled }: FlowProps) {
  const [payment, history] = usePaymentWithHistory(onSettled);
  const { clear } = useErrors();
  const [code, setCode] = useState("");
  useReportedError("Apply coupon", payment.error);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    clear();
    void payment.applyCoupon({ userId, code: code.trim() });
  };
  return (
    <section className="card" data-testid="coupon-card">
      <h2>
        <span className="step">2</span> Apply a coupon
      </h2>
      <p className="muted">
        <code>ApplyCoupon</code> redeems a promotion code as wallet credit; the transaction is watched until it settles.
      </p>
      <form className="row" data-testid="coupon-form" onSubmit={submit}>
        <label htmlFor="coupon-code">Code</label>
        <input id="coupon-code" data-testid="coupon-code" placeholder="WELCOME5" autoComplete="off" spellCheck={false} value={code} onChange={(e) => setCode(e.target.value)} />
        <button type="submit" data-testid="apply-coupon" disabled={!code.trim()}>
          Apply
        </button>
      </form>
      <Stream prefix="coupon" payment={payment} history={history} />
    </section>
  );
}

/** 3 · A trial: StartTrial validates a card (a small hold, released), and its success grants the trial. */
export function Trial({ userId, cardFor, onSettled }: FlowProps) {
  const [payment, history] = usePaymentWithHistory(onSettled);
  const { report, clear } = useErrors();
  useReportedError("Start trial", payment.error);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    clear();
    try {
      const card = await cardFor("pm_card_visa");
      await payment.startTrial({ userId, paymentMethodId: card.id });
    } catch (err) {
      report("Start trial", err);
    }
  };
  return (
    <section className="card" data-testid="trial-card">
      <h2>
        <span className="step">3</span> Validate a card and start the trial
      </h2>
      <p className="muted">
        <code>StartTrial</code> places and releases a small hold on the test Visa; once Stripe confirms it, the trial
        starts with its credit.
      </p>
      <form className="row" onSubmit={submit}>
        <button type="submit" data-testid="start-trial">
          Start trial
        </button>
      </form>
      <Stream prefix="trial" payment={payment} history={history} />
    </section>
  );
}
