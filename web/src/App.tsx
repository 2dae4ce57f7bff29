// The wallet demo: sign in with a demo token, then the three payment flows and the wallet,
// all through @payments/client over grpc-web. Nothing is polled: every status comes from a
// WatchTransaction stream, and the wallet is read once at sign-in and after each settle.

import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { PaymentsClient, TrialState, bearerAuth, type Wallet as WalletMsg } from "@payments/client";
import { PaymentsProvider, usePaymentsClient } from "@payments/client/react";
import { ErrorsProvider, useErrors } from "./errors.js";
import { Coupon, TopUp, Trial, useCards } from "./flows.js";
import { formatMoney } from "./format.js";

/** What the dev server's `/demo/config` answers. */
export interface DemoConfig {
  apiUrl: string;
  stripeSimUrl: string;
}

interface Session {
  userId: string;
  client: PaymentsClient;
}

export function App({ config }: { config: DemoConfig }) {
  const [session, setSession] = useState<Session | null>(null);
  return (
    <ErrorsProvider>
      <SignIn config={config} onSignedIn={setSession} signedInAs={session?.userId} />
      {session ? (
        // A new user is a new tree: their streams and keys start afresh.
        <PaymentsProvider client={session.client} key={session.userId}>
          <Wallet userId={session.userId} stripeSimUrl={config.stripeSimUrl} />
        </PaymentsProvider>
      ) : (
        <main>
          <p className="muted">Sign in to read your wallet.</p>
        </main>
      )}
      <footer className="muted">
        Demo only: the sign-in token comes from the dev server's <code>/demo/token</code>, which signs any user id with
        the development secret.
      </footer>
    </ErrorsProvider>
  );
}

function SignIn({ config, onSignedIn, signedInAs }: { config: DemoConfig; onSignedIn(s: Session): void; signedInAs?: string }) {
  const [user, setUser] = useState(() => `demo-${crypto.randomUUID().slice(0, 8)}`);
  const { report, clear } = useErrors();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    clear();
    const userId = user.trim();
    try {
      const res = await fetch(`/demo/token?user=${encodeURIComponent(userId)}`);
      if (!res.ok) throw new Error(`/demo/token answered ${res.status}: ${await res.text()}`);
      const { token } = (await res.json()) as { token: string };
      const transport = createGrpcWebTransport({ baseUrl: config.apiUrl, interceptors: [bearerAuth(() => token)] });
      onSignedIn({ userId, client: new PaymentsClient(transport) });
    } catch (err) {
      report("Sign in", err);
    }
  };
  return (
    <header className="topbar">
      <div>
        <h1>Wallet demo</h1>
        <p className="subtitle">payments.v1 over grpc-web with @payments/client · Stripe is the local stripe-sim</p>
      </div>
      <form className="signin" data-testid="signin-form" onSubmit={submit}>
        <label htmlFor="user-id">Demo user</label>
        <input id="user-id" data-testid="user-id" autoComplete="off" spellCheck={false} value={user} onChange={(e) => setUser(e.target.value)} />
        <button type="submit" data-testid="sign-in">
          Sign in
        </button>
        {signedInAs && (
          <span className="who" data-testid="signed-in-as">
            signed in as {signedInAs}
          </span>
        )}
      </form>
    </header>
  );
}

/** The wallet, read at sign-in and again after each settle, and the three flows. */
function Wallet({ userId, stripeSimUrl }: { userId: string; stripeSimUrl: string }) {
  const client = usePaymentsClient();
  const { report } = useErrors();
  const cardFor = useCards(userId);
  const [wallet, setWallet] = useState<WalletMsg>();
  const [note, setNote] = useState("");
  const refresh = useCallback(
    (why: string) => {
      client.getWallet(userId).then(
        (w) => {
          setWallet(w);
          setNote(`GetWallet ${why}, at ${new Date().toLocaleTimeString()}`);
        },
        (err: unknown) => report("GetWallet", err),
      );
    },
    [client, userId, report],
  );
  useEffect(() => refresh("after sign-in"), [refresh]);
  const flow = useMemo(
    () => ({ userId, stripeSimUrl, cardFor, onSettled: () => refresh("after a transaction settled") }),
    [userId, stripeSimUrl, cardFor, refresh],
  );
  const trial = wallet?.trial;
  return (
    <main>
      <section className="card balance-card">
        <h2>Wallet</h2>
        <p className="balance" data-testid="wallet-balance" data-balance={wallet?.balance.toString() ?? ""}>
          {wallet ? formatMoney(wallet.balance, wallet.currency) : "—"}
        </p>
        <p className="muted" data-testid="wallet-trial" data-state={trial ? TrialState[trial.state] : ""}>
          Trial: {trial ? TrialState[trial.state] : "—"}
          {trial && trial.credit > 0n && ` (credit ${formatMoney(trial.credit, wallet?.currency ?? "usd")})`}
        </p>
        <p className="muted" data-testid="wallet-note">
          {note}
        </p>
        <button type="button" className="secondary" data-testid="refresh-wallet" onClick={() => refresh("on request")}>
          Refresh
        </button>
      </section>
      <TopUp {...flow} />
      <Coupon {...flow} />
      <Trial {...flow} />
    </main>
  );
}
