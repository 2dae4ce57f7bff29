// Money for people: integer minor units in, text out (and typed dollars back to cents),
// never through floating point.

export function formatMoney(minor: bigint, currency: string): string {
  const code = (currency || "usd").toUpperCase();
  const negative = minor < 0n;
  const abs = negative ? -minor : minor;
  const major = `${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
  const symbol = code === "USD" ? "$" : "";
  return symbol ? `${negative ? "-" : ""}${symbol}${major}` : `${negative ? "-" : ""}${major} ${code}`;
}

/** Dollars typed by the user ("20", "20.5", "20.50") to integer cents; null if not a sum. */
export function parseCents(text: string): bigint | null {
  const m = /^\s*(\d+)(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  return BigInt(m[1]!) * 100n + BigInt((m[2] ?? "").padEnd(2, "0"));
}
