// One error bar for the page: the gRPC status as the server sent it (number, name,
// message) and the ErrorInfo reason when there is one.

import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { PaymentsError } from "@payments/client";

interface Shown {
  context: string;
  error: PaymentsError;
}

interface ErrorsApi {
  report(context: string, err: unknown): void;
  clear(): void;
}

const ErrorsContext = createContext<ErrorsApi>({ report: () => {}, clear: () => {} });

export function useErrors(): ErrorsApi {
  return useContext(ErrorsContext);
}

/** Reports `error` whenever a hook's error changes to a new one. */
export function useReportedError(context: string, error: PaymentsError | undefined): void {
  const { report } = useErrors();
  useEffect(() => {
    if (error) report(context, error);
  }, [context, error, report]);
}

export function ErrorsProvider({ children }: { children: ReactNode }) {
  const [shown, setShown] = useState<Shown | null>(null);
  const report = useCallback((context: string, err: unknown) => {
    const error = PaymentsError.from(err);
    console.error(context, error);
    setShown({ context, error });
  }, []);
  const clear = useCallback(() => setShown(null), []);
  return (
    <ErrorsContext.Provider value={{ report, clear }}>
      <div
        className="error"
        data-testid="error"
        role="alert"
        hidden={!shown}
        data-grpc-code={shown?.error.codeName ?? ""}
        data-reason={shown?.error.reason ?? ""}
      >
        <strong data-testid="error-code">
          {shown && `${shown.context}: gRPC ${shown.error.code} ${shown.error.codeName}`}
          {shown?.error.reason && ` ${shown.error.reason}`}
        </strong>
        <span data-testid="error-message">{shown && (shown.error.rawMessage || "(no message)")}</span>
        <button type="button" className="link" data-testid="error-dismiss" aria-label="Dismiss" onClick={clear}>
          ×
        </button>
      </div>
      {children}
    </ErrorsContext.Provider>
  );
}
