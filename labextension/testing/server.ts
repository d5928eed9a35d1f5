/**
 * A real HTTP server on 127.0.0.1 for the view tests: it answers the extension's requests
 * (`{baseUrl}streamchat/...`) with a route the test gives, and records every request, its body,
 * and whether the client closed the connection before the answer ended.
 */

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the server received. */
export class Exchange {
  constructor(
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly body: string
  ) {
    this.path = (req.url ?? '').split('?')[0];
    this.query = new URL(req.url ?? '', 'http://x').searchParams;
    this.closedByClient = new Promise(resolve => {
      res.on('close', () => {
        if (!res.writableEnded) {
          resolve();
        }
      });
    });
  }

  readonly path: string;
  readonly query: URLSearchParams;
  /** Resolves when the client closed the connection before the answer ended. */
  readonly closedByClient: Promise<void>;

  json(status: number, value: unknown): void {
    this.res.writeHead(status, { 'Content-Type': 'application/json' });
    this.res.end(JSON.stringify(value));
  }

  startEvents(): void {
    this.res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  }

  /** Write one SSE event and wait until it is handed to the kernel. */
  event(type: string, data: unknown, id?: number): Promise<void> {
    const frame = `${id === undefined ? '' : `id: ${id}\n`}event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    return new Promise((resolve, reject) =>
      this.res.write(frame, error => (error ? reject(error) : resolve()))
    );
  }
}

export type Route = (exchange: Exchange) => void | Promise<void>;

export class TestServer {
  private constructor(private readonly _server: http.Server) {}

  static async start(): Promise<TestServer> {
    const server = http.createServer();
    const testServer = new TestServer(server);
    server.on('request', (req, res) => {
      res.shouldKeepAlive = false;
      const chunks: Buffer[] = [];
      req.on('data', chunk => chunks.push(chunk as Buffer));
      req.on('end', () => {
        const exchange = new Exchange(req, res, Buffer.concat(chunks).toString('utf8'));
        testServer.exchanges.push(exchange);
        const waiting = [...testServer._arrived];
        testServer._arrived.clear();
        waiting.forEach(notify => notify());
        Promise.resolve(testServer.route(exchange)).catch(error => {
          if (!res.destroyed) {
            console.error('test server route failed:', error);
            res.destroy();
          }
        });
      });
    });
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
    return testServer;
  }

  /** What `PageConfig`'s `baseUrl` is set to, so that the extension's requests come here. */
  get baseUrl(): string {
    const { port } = this._server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/`;
  }

  /** Answers every request; tests set it. Unknown requests get a 404. */
  route: Route = exchange => exchange.json(404, { message: `no route for ${exchange.path}` });

  /** Resolves once `count` requests matching `path` (a prefix) have arrived. */
  async requests(path: string, count = 1): Promise<Exchange[]> {
    for (;;) {
      const matching = this.exchanges.filter(e => e.path.startsWith(path));
      if (matching.length >= count) {
        return matching;
      }
      await new Promise<void>(resolve => this._arrived.add(resolve));
    }
  }

  async stop(): Promise<void> {
    this._server.closeAllConnections();
    await new Promise(resolve => this._server.close(resolve));
  }

  exchanges: Exchange[] = [];
  private _arrived = new Set<() => void>();
}
