// @payments/client: the payments.v1 client for frontends.
//
//   client.ts       PaymentsClient: mutations retried with their idempotency key, reads,
//                   and watch/await; `rpc` for every generated method
//   watch.ts        watchTransaction (reconnecting, version-ordered) and awaitTransaction
//   errors.ts       PaymentsError: code, message, ErrorInfo reason, field violations
//   retry.ts        which failures are transient, and the backoff between attempts
//   idempotency.ts  newIdempotencyKey
//   status.ts       isSettled, statusName
//   react.ts        (entry point @payments/client/react) PaymentsProvider, useTransaction, usePayment
//   gen/            generated from proto/ by protoc-gen-es (not committed)

export {
  PaymentsClient,
  bearerAuth,
  type ApplyCouponInput,
  type CallOpts,
  type CardInput,
  type CreatePaymentInput,
  type PaymentsClientOptions,
  type RetryPolicy,
  type Started,
} from "./client.js";
export { awaitTransaction, watchTransaction, type ReconnectEvent, type WatchOptions } from "./watch.js";
export { ERROR_DOMAIN, PaymentsError, grpcCodeName, type FieldViolation } from "./errors.js";
export { backoffDelay, isTransient, type Backoff } from "./retry.js";
export { newIdempotencyKey } from "./idempotency.js";
export { isSettled, statusName } from "./status.js";
export * from "./gen/payments/v1/payments_pb.js";
