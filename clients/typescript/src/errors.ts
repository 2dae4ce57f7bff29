// Errors as the caller needs them: the gRPC code, the server's message, and the
// machine-readable reason payments-api attaches as google.rpc.ErrorInfo (plus the
// invalid fields of a google.rpc.BadRequest and the delay of a google.rpc.RetryInfo).

import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { isTransient } from "./retry.js";

/** The domain of payments-api's ErrorInfo reasons. */
export const ERROR_DOMAIN = "payments.v1";

/** One invalid field of a request, as the server named it. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * Every error this package throws. `reason` is the ErrorInfo reason (such as
 * "IDEMPOTENCY_KEY_REUSED", "COUPON_ALREADY_REDEEMED", "CARD_DECLINED", "RATE_LIMITED")
 * when the server sent one: branch on it, not on the message. The Connect error it came
 * from is `cause`.
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
    const info = cause.findDetails(ErrorInfoSchema)[0];
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
    this.retryable = isTransient(cause);
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
