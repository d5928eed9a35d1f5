/**
 * The page's document-events stream (src/documentstream.ts) against a real HTTP server on
 * 127.0.0.1 that speaks `GET {baseUrl}streamchat/documents/events?path=…` (SSE).
 */
import assert from 'node:assert/strict';
import { after, before, describe, mock, test } from 'node:test';

import { ServerConnection } from '@jupyterlab/services';

import { installDom } from '../testing/dom';
import { Exchange, TestServer } from '../testing/server';

import { DocumentStream } from '../src/documentstream';
import { ITurnWritten } from '../src/turnwritten';

const LIMIT = { timeout: 10_000 };

const TURN = {
  path: 'a.ipynb',
  conversation: 'c1',
  turn: { run: 'run-1', created: '2025-01-01T00:00:01Z' },
  before: null,
  after: { hash: 'v1', hash_algorithm: 'sha256' }
};

describe('DocumentStream', () => {
  let server: TestServer;
  let settings: ServerConnection.ISettings;

  before(async () => {
    server = await TestServer.start();
    installDom(server.baseUrl);
    settings = ServerConnection.makeSettings({ baseUrl: server.baseUrl });
  });

  after(async () => {
    await server.stop();
  });

  test(
    'When the server says ready and then writes a turn, Then the stream is ready and hands the turn on, and releases its slot at the end',
    LIMIT,
    async () => {
      server.route = async (exchange: Exchange) => {
        exchange.startEvents();
        await exchange.event('ready', { paths: exchange.query.getAll('path') });
        await exchange.event('turn', { nonsense: true }); // malformed: ignored
        await exchange.event('turn', TURN);
        exchange.res.end();
      };
      const warned = mock.method(console, 'warn', () => undefined);
      const turns: ITurnWritten[] = [];
      let released = 0;
      const stream = new DocumentStream(
        new Set(['a.ipynb', 'b c.ipynb']),
        settings,
        () => (released += 1),
        written => turns.push(written)
      );

      await stream.settled;
      assert.equal(stream.ready, true);
      const end = await stream.done;
      warned.mock.restore();

      assert.deepEqual(end, { kind: 'ended' });
      assert.equal(warned.mock.callCount(), 1, 'the malformed turn was told, and left out');
      assert.deepEqual(
        turns.map(t => [t.path, t.turn.run]),
        [['a.ipynb', 'run-1']]
      );
      assert.equal(released, 1);
      const [asked] = await server.requests('/streamchat/documents/events');
      assert.deepEqual(asked.query.getAll('path'), ['a.ipynb', 'b c.ipynb']);
    }
  );

  test(
    'When the server refuses one path, Then the stream ends refused, naming that path',
    LIMIT,
    async () => {
      server.route = exchange =>
        exchange.json(403, { message: 'outside the root', path: '../x.ipynb' });
      let released = 0;
      const stream = new DocumentStream(
        new Set(['../x.ipynb']),
        settings,
        () => (released += 1),
        () => undefined
      );

      const end = await stream.done;

      assert.deepEqual(end, { kind: 'refused', reason: 'outside the root', path: '../x.ipynb' });
      assert.equal(stream.ready, false);
      assert.equal(released, 1);
    }
  );

  test(
    'When the page aborts a stream, Then the server sees the hang-up and the stream ends',
    LIMIT,
    async () => {
      server.exchanges = [];
      server.route = async (exchange: Exchange) => {
        exchange.startEvents();
        await exchange.event('ready', {});
      };
      const stream = new DocumentStream(
        new Set(['a.ipynb']),
        settings,
        () => undefined,
        () => undefined
      );
      await stream.settled;

      stream.abort();
      const [exchange] = await server.requests('/streamchat/documents/events');
      await exchange.closedByClient;

      assert.deepEqual(await stream.done, { kind: 'ended' });
      assert.equal(stream.ended, true);
    }
  );
});
