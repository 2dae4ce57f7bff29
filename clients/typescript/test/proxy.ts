// A TCP proxy in front of payments-api, to make the network fail on purpose: `cutAll()`
// drops every open connection (a network drop), `dropNextResponse()` lets the next request
// through but cuts the connection as its answer arrives (the server acted; the client never
// heard back).

import { createServer, connect, type Server, type Socket } from "node:net";

export interface Proxy {
  url: string;
  /** Requests seen whose first line names `path`. */
  requests(path: string): number;
  cutAll(): void;
  dropNextResponse(): void;
  close(): Promise<void>;
}

export async function startProxy(upstreamPort: number): Promise<Proxy> {
  const pairs = new Set<[Socket, Socket]>();
  const seen: string[] = [];
  let dropNext = false;
  const server: Server = createServer((client) => {
    const upstream = connect(upstreamPort, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      const firstLine = chunk.toString("latin1").split("\r\n", 1)[0] ?? "";
      if (/^[A-Z]+ \//.test(firstLine)) seen.push(firstLine);
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (dropNext) {
        dropNext = false;
        close();
        return;
      }
      client.write(chunk);
    });
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("the proxy has no port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests: (path) => seen.filter((line) => line.includes(path)).length,
    cutAll: () => {
      for (const [client, upstream] of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    dropNextResponse: () => {
      dropNext = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [client, upstream] of pairs) {
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
