// Errors as the caller needs them: the gRPC code, the server's message, and the
// machine-readable reason payments-api attaches as google.rpc.ErrorInfo (plus the
// invalid fields of a google.rpc.BadRequest and the delay of a google.rpc.RetryInfo).

import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "./gen/payments/v1/payments_pb.js";
import { isTransient } from "./retry.js";

/** The domain of payments-api's ErrorInfo reasons (the names of the contract's ErrorReason). */
export const ERROR_DOMAIN = "payments.v1";

/**
 * Reasons whose status code is transient but where the same call again cannot help: the
 * user has as many watch streams open as allowed until one of them closes.
 */
const NOT_RETRYABLE: ReadonlySet<string> = new Set([ErrorReason[ErrorReason.USER_WATCH_LIMIT]]);

/** One invalid field of a request, as the server named it. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * Every error this package throws. `reason` is the ErrorInfo reason, one of the contract's
 * ErrorReason names ("IDEMPOTENCY_KEY_REUSED", "COUPON_ALREADY_REDEEMED", "RATE_LIMITED"…),
 * whenever payments-api answered: branch on it (`is(ErrorReason.X)`), never on the
 * message, and treat a reason this build does not know by its code. It is undefined when
 * no server answered (a network failure) or a proxy did. The Connect error is `cause`.
 */
export class PaymentsError extends Error {
  override readonly name = "PaymentsError";
  /** The gRPC status code. */
  readonly code: Code;
  /** The code as gRPC spells it: "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The server's message, without the code in front. */
  readonly rawMessage: string;
  /** google.rpc.ErrorInfo's reason, when the server sent one. */
  readonly reason: string | undefined;
  /** google.rpc.ErrorInfo's domain ("payments.v1" for payments-api's own reasons). */
  readonly domain: string | undefined;
  /** google.rpc.ErrorInfo's metadata (empty when there is none). */
  readonly metadata: Readonly<Record<string, string>>;
  /** google.rpc.BadRequest's field violations (INVALID_ARGUMENT names the field). */
  readonly fieldViolations: readonly FieldViolation[];
  /** google.rpc.RetryInfo's delay, in ms, when the server asked for one. */
  readonly retryDelayMs: number | undefined;
  /** Whether the same call may simply be made again (with the same idempotency key). */
  readonly retryable: boolean;
  override readonly cause: ConnectError;

  constructor(cause: ConnectError) {
    const infos = cause.findDetails(ErrorInfoSchema);
    const info = infos.find((i) => i.domain === ERROR_DOMAIN) ?? infos[0];
    const codeName = grpcCodeName(cause.code);
    super(`${codeName}${info?.reason ? ` (${info.reason})` : ""}: ${cause.rawMessage || "(no message)"}`);
    this.cause = cause;
    this.code = cause.code;
    this.codeName = codeName;
    this.rawMessage = cause.rawMessage;
    this.reason = info?.reason || undefined;
    this.domain = info?.domain || undefined;
    this.metadata = { ...(info?.metadata ?? {}) };
    this.fieldViolations = cause
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map(({ field, description }) => ({ field, description })));
    const delay = cause.findDetails(RetryInfoSchema)[0]?.retryDelay;
    this.retryDelayMs = delay ? Number(delay.seconds) * 1000 + Math.floor(delay.nanos / 1e6) : undefined;
    this.retryable = isTransient(cause) && !NOT_RETRYABLE.has(this.reason ?? "");
  }

  /** Whether the server gave this reason: `err.is(ErrorReason.COUPON_ALREADY_REDEEMED)`. */
  is(reason: ErrorReason): boolean {
    return this.domain === ERROR_DOMAIN && this.reason === ErrorReason[reason];
  }

  /** Any caught value as a PaymentsError (an AbortError becomes CANCELED). */
  static from(err: unknown): PaymentsError {
    if (err instanceof PaymentsError) return err;
    return new PaymentsError(ConnectError.from(err));
  }
}

/** Connect's code name (InvalidArgument) as gRPC spells it (INVALID_ARGUMENT). */
export function grpcCodeName(code: Code): string {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
