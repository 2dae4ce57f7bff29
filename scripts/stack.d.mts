// Types of stack.mjs, for the TypeScript tests that use it.

export interface Proc {
  name: string;
  lines: string[];
  exited: { code: number | null; signal: string | null } | null;
}

export interface Stack {
  databaseUrl: string;
  simUrl: string;
  apiUrl: string;
  apiPort: number;
  jwtSecret: string;
  procs: Proc[];
  api: Proc;
  stop(): Promise<void>;
  restartApi(options?: { signal?: "SIGTERM" | "SIGKILL"; whileDown?: () => Promise<void> }): Promise<Proc>;
  logs(lines?: number): string;
  stripeGet(path: string): Promise<any>;
  stripePost(path: string, form: Record<string, string>): Promise<any>;
  authenticate3ds(paymentIntent: string, clientSecret: string, outcome?: "succeed" | "fail"): Promise<void>;
  createPromotionCode(code: string, cents: number): Promise<string>;
  customerPaymentIntents(paymentIntent: string): Promise<{ id: string; amount: number; status: string }[]>;
  sql(sql: string): string;
  token(user: string): string;
}

export const repoRoot: string;
export function startStack(options?: { name?: string; corsOrigin?: string }): Promise<Stack>;
export function freePort(): Promise<number>;
export function psql(sql: string, url?: string): string;
export function sleep(ms: number): Promise<void>;
export function userToken(user: string, secret: string): string;
export function startProcess(name: string, command: string, args: string[], env: Record<string, string>, cwd?: string): Proc;
export function stopProcess(proc: Proc, graceMs?: number): Promise<unknown>;
export function waitUntil(what: string, check: () => unknown, options?: { proc?: Proc; timeoutMs?: number }): Promise<void>;
export function tail(proc: Proc, n?: number): string;
export function tcpOpen(port: number): Promise<boolean>;
export function httpOk(url: string): Promise<boolean>;
