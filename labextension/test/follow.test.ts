/**
 * `followRun` and `readRunStream` (src/sse.ts) against a real HTTP server on 127.0.0.1 that
 * serves a run's events as the SPEC says (`id:`, `event:`, `data:` JSON; `: ping` keepalives),
 * drops connections mid-stream, goes silent, replays too much, and records the `Last-Event-ID`
 * of every request and whether the client closed its connection.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';

/** A hanging stream fails its test instead of the whole run. */
const LIMIT = { timeout: 10_000 };

import { RunState } from '../src/run';
import { followRun, IRunEvent, OpenRunStream, readRunStream, StreamRefusedError } from '../src/sse';

const TEXT =
  'The quick brown fox jumps over the lazy dog, then naps under the old oak tree ' +
  'while the sun sets slowly — and nobody, not even the café owner, misses a word. 🦊';
const WORDS = TEXT.match(/\S+\s*/g) ?? [];

interface IServerEvent {
  id: number;
  type: string;
  data: { [key: string]: unknown };
}

/** The run of the SPEC: `run` first, reasoning, one `delta` per word, `usage`, `done` last. */
function runEvents(): IServerEvent[] {
  const events: IServerEvent[] = [];
  const add = (type: string, data: { [key: string]: unknown }): void => {
    events.push({ id: events.length + 1, type, data });
  };
  add('run', {
    id: 'run-1',
    model: 'demo:echo',
    mode: 'detached',
    created: '2025-01-01T00:00:00Z'
  });
  add('reasoning', { text: 'Thinking.' });
  for (const word of WORDS) {
    add('delta', { text: word });
  }
  add('usage', { input_tokens: 12, output_tokens: WORDS.length });
  add('done', {
    status: 'completed',
    finish_reason: 'stop',
    usage: { input_tokens: 12, output_tokens: WORDS.length }
  });
  return events;
}

const EVENTS = runEvents();
const LAST_ID = EVENTS.length;

function frame(event: IServerEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** One request the server received. */
class Connection {
  constructor(
    readonly index: number,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse
  ) {
    const header = req.headers['last-event-id'];
    this.lastEventId = typeof header === 'string' ? header : undefined;
    this.closedByClient = new Promise(resolve => {
      res.on('close', () => {
        if (!res.writableEnded) {
          this.clientClosedAt = Date.now();
          resolve();
        }
      });
    });
  }

  /** The `Last-Event-ID` request header, as sent. */
  readonly lastEventId: string | undefined;
  /** Resolves when the connection closed before the server ended the response. */
  readonly closedByClient: Promise<void>;
  clientClosedAt: number | null = null;

  /** The `Last-Event-ID` as a number (0 if absent). */
  get after(): number {
    return Number(this.lastEventId ?? 0);
  }

  startStream(): void {
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache'
    });
  }

  /** Write and wait until the bytes are handed to the kernel. */
  write(text: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.res.write(text, error => (error ? reject(error) : resolve()))
    );
  }

  async send(events: IServerEvent[]): Promise<void> {
    for (const event of events) {
      await this.write(frame(event));
    }
  }

  /** Drop the connection the hard way, after giving the client time to read what was sent. */
  async drop(): Promise<void> {
    await sleep(50);
    this.req.socket.destroy();
  }
}

type Handler = (connection: Connection) => Promise<void>;

class RunServer {
  private constructor(
    private readonly _server: http.Server,
    private readonly _handler: { current: Handler }
  ) {}

  static async start(): Promise<RunServer> {
    const handler: { current: Handler } = { current: async () => undefined };
    const server = http.createServer();
    const runServer = new RunServer(server, handler);
    server.on('request', (req, res) => {
      // One request per connection: no idle keep-alive socket that a test's cleanup could close
      // under the client's next request.
      res.shouldKeepAlive = false;
      const connection = new Connection(runServer.connections.length, req, res);
      runServer.connections.push(connection);
      handler.current(connection).catch(error => {
        // A client that went away mid-write is what some tests do; anything else is a test bug,
        // which must not look like a hanging stream.
        if (!res.destroyed) {
          console.error('test server handler failed:', error);
          res.destroy();
        }
      });
    });
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
    return runServer;
  }

  /** Serve the next requests with `handler`; end the streams of earlier tests. */
  serve(handler: Handler): void {
    // Not closeAllConnections(): that would also close an idle socket the client's pool opened
    // ahead of time, and the next request sent on it would fail.
    for (const connection of this.connections) {
      connection.req.socket.destroy();
    }
    this.connections = [];
    this._handler.current = handler;
  }

  get url(): string {
    const { port } = this._server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/streamchat/runs/run-1/events`;
  }

  /** `open` as the brief of followRun has it: the last id seen goes in `Last-Event-ID`. */
  readonly open: OpenRunStream = (last, signal) =>
    fetch(this.url, { headers: { 'Last-Event-ID': String(last) }, signal });

  async stop(): Promise<void> {
    this._server.closeAllConnections();
    await new Promise(resolve => this._server.close(resolve));
  }

  connections: Connection[] = [];
}

/** A well-behaved server: everything after `Last-Event-ID`, pings in between, then the end. */
async function serveFrom(connection: Connection, ping = false): Promise<void> {
  connection.startStream();
  for (const event of EVENTS.filter(e => e.id > connection.after)) {
    if (ping) {
      await connection.write(': ping\n\n');
    }
    await connection.send([event]);
  }
  connection.res.end();
}

interface IFollowed {
  result: boolean;
  events: IRunEvent[];
  text: string;
}

async function follow(
  server: RunServer,
  options: Parameters<typeof followRun>[3] = {},
  signal = new AbortController().signal,
  onEvent: (event: IRunEvent) => void = () => undefined
): Promise<IFollowed> {
  const events: IRunEvent[] = [];
  const result = await followRun(
    server.open,
    event => {
      events.push(event);
      onEvent(event);
    },
    signal,
    { retryDelays: [10, 20, 40], ...options }
  );
  const text = events
    .filter(e => e.type === 'delta')
    .map(e => e.data.text)
    .join('');
  return { result, events, text };
}

/** Every event of the run exactly once, in order. */
function assertAllOnce(events: IRunEvent[]): void {
  assert.deepEqual(
    events.map(e => e.id),
    EVENTS.map(e => e.id)
  );
  assert.deepEqual(events, EVENTS);
}

describe('followRun against a real HTTP server', () => {
  let server: RunServer;
  before(async () => {
    server = await RunServer.start();
  });
  after(async () => {
    await server.stop();
  });

  test('an uninterrupted run: every event once, resolves true at done', LIMIT, async () => {
    server.serve(connection => serveFrom(connection, true));
    const { result, events, text } = await follow(server);
    assert.equal(result, true);
    assert.equal(text, TEXT);
    assertAllOnce(events);
    assert.equal(server.connections.length, 1);
    assert.equal(server.connections[0].lastEventId, '0');
  });

  test(
    'connections dropped mid-stream are resumed with Last-Event-ID: no word lost or repeated',
    LIMIT,
    async () => {
      // First connection: 10 events, then half of the 11th, then a hard drop. Second: up to 25,
      // dropped between two events. Third: the rest.
      server.serve(async connection => {
        const events = EVENTS.filter(e => e.id > connection.after);
        if (connection.index === 0) {
          connection.startStream();
          await connection.send(events.slice(0, 10));
          await connection.write(frame(events[10]).slice(0, 20));
          await connection.drop();
        } else if (connection.index === 1) {
          connection.startStream();
          await connection.send(events.filter(e => e.id <= 25));
          await connection.drop();
        } else {
          await serveFrom(connection);
        }
      });
      const { result, events, text } = await follow(server);
      assert.equal(result, true);
      assert.equal(text, TEXT);
      assertAllOnce(events);
      assert.deepEqual(
        server.connections.map(c => c.lastEventId),
        ['0', '10', '25']
      );
    }
  );

  test('a snapshot on resume replaces what was lost (RunState follows it)', LIMIT, async () => {
    const cut = 12; // events after this id are "no longer buffered" when the client comes back
    server.serve(async connection => {
      connection.startStream();
      if (connection.index === 0) {
        await connection.send(EVENTS.slice(0, 6));
        await connection.drop();
        return;
      }
      const seen = EVENTS.filter(e => e.id <= cut);
      await connection.send([
        {
          id: cut,
          type: 'snapshot',
          data: {
            text: seen
              .filter(e => e.type === 'delta')
              .map(e => e.data.text)
              .join(''),
            reasoning: 'Thinking.'
          }
        }
      ]);
      await connection.send(EVENTS.filter(e => e.id > cut));
      connection.res.end();
    });
    const state = new RunState(0);
    const { result } = await follow(server, {}, undefined, event => state.apply(event, 1));
    assert.equal(result, true);
    assert.equal(server.connections[1].lastEventId, '6');
    assert.equal(state.text, TEXT);
    assert.equal(state.reasoning, 'Thinking.');
    assert.equal(state.status, 'completed');
  });

  test('duplicate and old ids from a server that replays too much are dropped', LIMIT, async () => {
    server.serve(async connection => {
      connection.startStream();
      if (connection.index === 0) {
        await connection.send(EVENTS.slice(0, 8));
        await connection.drop();
        return;
      }
      // Replays from 5 events before Last-Event-ID, and sends every event twice.
      for (const event of EVENTS.filter(e => e.id > connection.after - 5)) {
        await connection.send([event, event]);
      }
      connection.res.end();
    });
    const { result, events, text } = await follow(server);
    assert.equal(result, true);
    assert.equal(server.connections[1].lastEventId, '8');
    assert.equal(text, TEXT);
    assertAllOnce(events);
  });

  test('a 404 rejects with StreamRefusedError, without retrying', LIMIT, async () => {
    server.serve(async connection => {
      connection.res.writeHead(404, { 'Content-Type': 'application/json' });
      connection.res.end('{"message": "no such run"}');
    });
    await assert.rejects(follow(server), (error: unknown) => {
      assert.ok(error instanceof StreamRefusedError);
      assert.equal(error.status, 404);
      return true;
    });
    await sleep(100);
    assert.equal(server.connections.length, 1);
  });

  test('a 503 is retried with the same Last-Event-ID', LIMIT, async () => {
    server.serve(async connection => {
      if (connection.index < 2) {
        connection.res.writeHead(503);
        connection.res.end();
        return;
      }
      await serveFrom(connection);
    });
    const { result, text } = await follow(server);
    assert.equal(result, true);
    assert.equal(text, TEXT);
    assert.deepEqual(
      server.connections.map(c => c.lastEventId),
      ['0', '0', '0']
    );
  });

  test('gives up after maxFailures consecutive failures', LIMIT, async () => {
    server.serve(async connection => {
      connection.res.writeHead(503);
      connection.res.end();
    });
    await assert.rejects(follow(server, { maxFailures: 3 }), /failed 3 times in a row/);
    assert.equal(server.connections.length, 3);
  });

  test('aborting the signal resolves false promptly and closes the connection', LIMIT, async () => {
    server.serve(async connection => {
      connection.startStream();
      await connection.send(EVENTS.slice(0, 5));
      // then silence, connection kept open
    });
    const abort = new AbortController();
    let abortedAt = 0;
    const followed = follow(server, { idleTimeout: 10_000 }, abort.signal, event => {
      if (event.id === 5) {
        abortedAt = Date.now();
        abort.abort();
      }
    });
    const { result, events } = await followed;
    const resolvedAfter = Date.now() - abortedAt;
    assert.equal(result, false);
    assert.equal(events.length, 5);
    assert.ok(resolvedAfter < 500, `resolved ${resolvedAfter} ms after the abort`);
    const connection = server.connections[0];
    await Promise.race([
      connection.closedByClient,
      sleep(2000).then(() => assert.fail('the server never saw the connection close'))
    ]);
    await sleep(100);
    assert.equal(server.connections.length, 1, 'no reconnect after the abort');
  });

  test('aborting while waiting to reconnect resolves false promptly', LIMIT, async () => {
    server.serve(async connection => {
      connection.startStream();
      await connection.send(EVENTS.slice(0, 3));
      await connection.drop();
    });
    const abort = new AbortController();
    const started = Date.now();
    const followed = follow(server, { retryDelays: [60_000] }, abort.signal);
    await sleep(300); // the drop happened (after 50 ms); now in the 60 s retry delay
    abort.abort();
    const { result, events } = await followed;
    assert.equal(result, false);
    assert.equal(events.length, 3);
    assert.ok(Date.now() - started < 1000);
    assert.equal(server.connections.length, 1);
  });

  test('a silent stream is reconnected after idleTimeout', LIMIT, async () => {
    server.serve(async connection => {
      if (connection.index === 0) {
        connection.startStream();
        await connection.send(EVENTS.slice(0, 4));
        return; // silent, connection kept open
      }
      await serveFrom(connection);
    });
    const started = Date.now();
    const { result, events, text } = await follow(server, { idleTimeout: 300 });
    assert.equal(result, true);
    assert.equal(text, TEXT);
    assertAllOnce(events);
    assert.deepEqual(
      server.connections.map(c => c.lastEventId),
      ['0', '4']
    );
    const first = server.connections[0];
    await Promise.race([
      first.closedByClient,
      sleep(2000).then(() => assert.fail('the silent connection was not closed'))
    ]);
    assert.ok(first.clientClosedAt! - started >= 250, 'closed by the idle timeout, not before');
  });

  test('pings keep a slow stream alive: no reconnect', LIMIT, async () => {
    server.serve(async connection => {
      connection.startStream();
      await connection.send(EVENTS.slice(0, 2));
      for (let i = 0; i < 8; i++) {
        await sleep(100);
        await connection.write(': ping\n\n');
      }
      await connection.send(EVENTS.slice(2));
      connection.res.end();
    });
    const { result, text } = await follow(server, { idleTimeout: 300 });
    assert.equal(result, true);
    assert.equal(text, TEXT);
    assert.equal(server.connections.length, 1);
  });
});

describe('readRunStream against a real HTTP server', () => {
  let server: RunServer;
  before(async () => {
    server = await RunServer.start();
  });
  after(async () => {
    await server.stop();
  });

  test('a one-shot response ends at done, even if the connection stays open', LIMIT, async () => {
    server.serve(async connection => {
      connection.startStream();
      await connection.send(EVENTS);
      await connection.write(frame({ id: LAST_ID + 1, type: 'delta', data: { text: 'late' } }));
      // no end: the stream would hang a reader that waits for the end of the body
    });
    const events: IRunEvent[] = [];
    const response = await fetch(server.url);
    const finished = await readRunStream(response, event => events.push(event), 5_000);
    assert.equal(finished, true);
    assertAllOnce(events);
    await Promise.race([
      server.connections[0].closedByClient,
      sleep(2000).then(() => assert.fail('the connection was not closed after done'))
    ]);
  });

  test('a response that ends without done resolves false', LIMIT, async () => {
    server.serve(async connection => {
      connection.startStream();
      await connection.send(EVENTS.slice(0, -1));
      connection.res.end();
    });
    const events: IRunEvent[] = [];
    const finished = await readRunStream(await fetch(server.url), event => events.push(event));
    assert.equal(finished, false);
    assert.equal(events.length, LAST_ID - 1);
  });
});
