import { TransactionStatus } from "./gen/payments/v1/payments_pb.js";

/** The statuses after which a transaction never changes again on its own. */
const SETTLED: ReadonlySet<TransactionStatus> = new Set([
  TransactionStatus.SUCCEEDED,
  TransactionStatus.FAILED,
  TransactionStatus.CANCELED,
  TransactionStatus.REFUNDED,
]);

/** Whether `status` is final: SUCCEEDED, FAILED, CANCELED or REFUNDED (as the server ends its streams). */
export function isSettled(status: TransactionStatus | undefined): boolean {
  return status !== undefined && SETTLED.has(status);
}

/** The status as the contract spells it without its prefix: "REQUIRES_ACTION". */
export function statusName(status: TransactionStatus | undefined): string {
  if (status === undefined) return "";
  return TransactionStatus[status] ?? `STATUS_${status}`;
}
