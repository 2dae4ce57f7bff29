#!/usr/bin/env bash
# What a frontend gets from the registry: `npm pack`s this package and installs the tarball
# into a scratch project (with react, its optional peer, its types, and connect-web), then
# imports both entry points in Node and type-checks, through the package's declarations, a
# file that uses them and the root README's React snippet.
set -euo pipefail
pkg_dir="$(cd "$(dirname "$0")" && pwd)"
repo_dir="$(cd "$pkg_dir/../.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cd "$pkg_dir"
tarball="$scratch/$(npm pack --silent --pack-destination "$scratch" | tail -1)"
files="$(tar -tzf "$tarball")"
echo "packed $(basename "$tarball"): $(wc -l <<<"$files") files"
grep -qx 'package/dist/react.d.ts' <<<"$files"
if grep -Eq '^package/(src|test)/' <<<"$files"; then
  echo "the tarball carries sources or tests" >&2
  exit 1
fi

cd "$scratch"
mkdir app && cd app
npm init -y >/dev/null
npm pkg set type=module
npm install --no-audit --no-fund --prefer-offline "$tarball" react@19 @types/react@19 @connectrpc/connect-web@2 >/dev/null
node --input-type=module -e '
  const client = await import("@payments/client");
  const react = await import("@payments/client/react");
  const missing = ["PaymentsClient", "PaymentsError", "newIdempotencyKey", "TransactionStatus", "PaymentsService"]
    .filter((name) => !(name in client))
    .concat(["PaymentsProvider", "useTransaction", "usePayment"].filter((name) => !(name in react)));
  if (missing.length) throw new Error(`missing exports: ${missing}`);
  console.log("imported @payments/client and @payments/client/react from the tarball");
'
cat > check.ts <<'TS'
import { PaymentsClient, TransactionStatus, newIdempotencyKey, type Transaction } from "@payments/client";
import { usePayment, useTransaction } from "@payments/client/react";
import { createRouterTransport } from "@connectrpc/connect";

const client = new PaymentsClient(createRouterTransport(() => {}));
const settled: Promise<Transaction> = client.awaitTransaction("id", { status: TransactionStatus.SUCCEEDED });
const key: string = newIdempotencyKey();
export const hooks = [usePayment, useTransaction, settled, key];
TS
# The root README's React snippet, as written there, with what it leaves to the app.
{
  echo 'declare const API_URL: string;'
  echo 'declare function getToken(): string;'
  echo 'declare const stripe: { confirmCardPayment(clientSecret: string): Promise<unknown> };'
  awk '/^### From a frontend \(React\)/ {section = 1} section && /^```tsx/ {code = 1; next} code && /^```/ {exit} code' \
    "$repo_dir/README.md"
  echo 'export { TopUp, PaymentsProvider, payments };'
} > readme.tsx
grep -q usePayment readme.tsx
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "strict": true, "noEmit": true, "module": "nodenext", "moduleResolution": "nodenext",
    "target": "es2022", "lib": ["es2022", "dom"], "types": [], "skipLibCheck": false, "jsx": "react-jsx"
  },
  "files": ["check.ts", "readme.tsx"]
}
JSON
node "$repo_dir/node_modules/typescript/bin/tsc" -p tsconfig.json
echo "the declarations, and the README's React snippet, type-check in a scratch project"
