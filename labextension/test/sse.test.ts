/**
 * The `text/event-stream` parser and reader (src/sse.ts) on in-memory input.
 * The reconnecting follower runs against a real HTTP server in follow.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { decodeRunEvent, ISSEMessage, readSSE, SSEParser } from '../src/sse';

function parseChunks(chunks: string[]): ISSEMessage[] {
  const parser = new SSEParser();
  return chunks.flatMap(chunk => parser.push(chunk));
}

function msg(data: string, event = 'message', id: string | null = null): ISSEMessage {
  return { event, data, id };
}

/** A stream using every line ending, comments, ids, multi-line data and non-ASCII text. */
const MIXED =
  ': ping\n\n' +
  'id: 1\r\nevent: run\r\ndata: {"id":"r1"}\r\n\r\n' +
  'id: 2\revent: delta\rdata: {"text":"héllo 🌍"}\r\r' +
  'id: 3\nevent: delta\ndata: line one\ndata: line two\n\n' +
  ': comment between events\r\n' +
  'event: delta\r\n: comment inside an event\r\ndata:no space\r\n\r\n' +
  'id: 5\n' +
  'data:  two spaces\n' +
  'data\n' +
  '\n' +
  'event: done\ndata: {}\n\n';

const MIXED_EVENTS: ISSEMessage[] = [
  msg('{"id":"r1"}', 'run', '1'),
  msg('{"text":"héllo 🌍"}', 'delta', '2'),
  msg('line one\nline two', 'delta', '3'),
  msg('no space', 'delta', '3'),
  msg(' two spaces\n', 'message', '5'),
  msg('{}', 'done', '5')
];

describe('SSEParser', () => {
  test('LF, CRLF and CR line ends, comments, ids, multi-line data', () => {
    assert.deepEqual(parseChunks([MIXED]), MIXED_EVENTS);
  });

  test('each line ending alone dispatches', () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const text = `event: e${eol}data: a${eol}data: b${eol}${eol}data: c${eol}${eol}`;
      assert.deepEqual(parseChunks([text]), [msg('a\nb', 'e'), msg('c')], JSON.stringify(eol));
    }
  });

  test('a CRLF split across chunks is one line end, not two', () => {
    // Read as CR + LF, the LF would be a blank line and dispatch `a` alone.
    assert.deepEqual(parseChunks(['data: a\r', '\ndata: b\r', '\n\r', '\n']), [msg('a\nb')]);
    assert.deepEqual(parseChunks(['data: a\r', '\n', '\r', '\n', 'data: b\r\n\r\n']), [
      msg('a'),
      msg('b')
    ]);
  });

  test('an event ended by CR CR at a chunk end is dispatched at once', () => {
    // Not held back until the next byte (with CR line ends, the next byte may be the next ping,
    // 15 s later, or never: the stream's last event, `done`, would be lost).
    const parser = new SSEParser();
    assert.deepEqual(parser.push('data: a\r\r'), [msg('a')]);
    assert.deepEqual(
      parser.push('\ndata: b\n\n'),
      [msg('b')],
      'the LF after the CR is no blank line'
    );
  });

  test('a lone CR at a chunk end is a line end once the next chunk shows no LF', () => {
    const parser = new SSEParser();
    assert.deepEqual(parser.push('data: a\r'), []);
    assert.deepEqual(parser.push('\r'), [msg('a')]);
    assert.deepEqual(parser.push('data: b\r'), []);
    assert.deepEqual(parser.push('\rdata: c\n\n'), [msg('b'), msg('c')]);
  });

  test('comments (`: ping`) are no events and do not end one', () => {
    assert.deepEqual(parseChunks([': ping\n\n: ping\n\n']), []);
    assert.deepEqual(parseChunks(['data: a\n: ping\ndata: b\n\n']), [msg('a\nb')]);
  });

  test('an event without data is not dispatched, and its type does not leak', () => {
    assert.deepEqual(parseChunks(['event: lonely\n\ndata: x\n\n']), [msg('x')]);
  });

  test('ids persist to later events; an id with NUL is ignored', () => {
    assert.deepEqual(parseChunks(['id: 7\ndata: a\n\ndata: b\n\nid: 8\u0000\ndata: c\n\n']), [
      msg('a', 'message', '7'),
      msg('b', 'message', '7'),
      msg('c', 'message', '7')
    ]);
  });

  test('an unfinished event stays buffered', () => {
    const parser = new SSEParser();
    assert.deepEqual(parser.push('id: 1\nevent: delta\ndata: {"text":"a"}\n'), []);
    assert.deepEqual(parser.push('\n'), [msg('{"text":"a"}', 'delta', '1')]);
  });

  test('split at every offset gives the same events', () => {
    for (let i = 0; i <= MIXED.length; i++) {
      assert.deepEqual(parseChunks([MIXED.slice(0, i), MIXED.slice(i)]), MIXED_EVENTS, `at ${i}`);
    }
    assert.deepEqual(parseChunks(Array.from(MIXED)), MIXED_EVENTS, 'one character per chunk');
  });

  test('many random splits give the same events', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let round = 0; round < 300; round++) {
      const chunks: string[] = [];
      let at = 0;
      while (at < MIXED.length) {
        const size = Math.floor(random() * 6);
        chunks.push(MIXED.slice(at, at + size));
        at += size;
      }
      assert.deepEqual(parseChunks(chunks), MIXED_EVENTS, JSON.stringify(chunks));
    }
  });
});

function bodyOf(
  chunks: Uint8Array[],
  close = true
): { response: Response; cancelled: () => boolean } {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) {
        controller.enqueue(chunk);
      }
      if (close) {
        controller.close();
      }
    },
    cancel() {
      cancelled = true;
    }
  });
  return { response: new Response(stream), cancelled: () => cancelled };
}

describe('readSSE', () => {
  test('split at every byte offset (inside multi-byte characters too) gives the same events', async () => {
    const bytes = new TextEncoder().encode(MIXED);
    for (let i = 0; i <= bytes.length; i++) {
      const { response } = bodyOf([bytes.slice(0, i), bytes.slice(i)]);
      const got: ISSEMessage[] = [];
      await readSSE(response, message => got.push(message) > 0);
      assert.deepEqual(got, MIXED_EVENTS, `at byte ${i}`);
    }
  });

  test('an event not ended by a blank line when the stream ends is dropped', async () => {
    const { response } = bodyOf([new TextEncoder().encode('data: a\n\ndata: cut\n')]);
    const got: ISSEMessage[] = [];
    await readSSE(response, message => got.push(message) > 0);
    assert.deepEqual(got, [msg('a')]);
  });

  test('with CR line ends, the last event of the stream is delivered', async () => {
    const { response } = bodyOf([new TextEncoder().encode('data: a\r\rdata: done\r\r')]);
    const got: string[] = [];
    await readSSE(response, message => got.push(message.data) > 0);
    assert.deepEqual(got, ['a', 'done']);
  });

  test('stops and cancels the body once the consumer returns false', async () => {
    const { response, cancelled } = bodyOf(
      [new TextEncoder().encode('data: a\n\ndata: b\n\n')],
      false
    );
    const got: string[] = [];
    await readSSE(response, message => {
      got.push(message.data);
      return false;
    });
    assert.deepEqual(got, ['a']);
    assert.ok(cancelled(), 'the body was cancelled');
  });

  test('a silent body rejects after idleTimeout and is cancelled', async () => {
    const { response, cancelled } = bodyOf([new TextEncoder().encode(': ping\n\n')], false);
    const started = Date.now();
    await assert.rejects(
      readSSE(response, () => true, 150),
      /silent for 150 ms/
    );
    assert.ok(Date.now() - started >= 140, 'not before the timeout');
    assert.ok(cancelled());
  });
});

describe('decodeRunEvent', () => {
  test('decodes id, type and JSON object data', () => {
    assert.deepEqual(decodeRunEvent(msg('{"text":"a"}', 'delta', '4')), {
      id: 4,
      type: 'delta',
      data: { text: 'a' }
    });
  });

  test('rejects what is not a run event', () => {
    for (const bad of [
      msg('{"text":"a"}', 'delta', 'x'),
      msg('{"text":"a"}', 'delta', '-1'),
      msg('{"text":"a"}', 'delta', '1.5'),
      msg('not json', 'delta', '1'),
      msg('[1]', 'delta', '1'),
      msg('null', 'delta', '1'),
      msg('"text"', 'delta', '1')
    ]) {
      assert.equal(decodeRunEvent(bad), null, JSON.stringify(bad));
    }
  });
});
