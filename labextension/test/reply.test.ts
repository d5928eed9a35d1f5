/**
 * The reply view (src/reply.ts) in a DOM (jsdom): what a stream's events show (status, text, errors),
 * the code toolbar, and the "Saved in" note as a real HTTP server on 127.0.0.1 answers
 * `GET {baseUrl}streamchat/runs/{id}?wait=recorded`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { buttonsNamed, find, installDom } from '../testing/dom';
import { TestServer } from '../testing/server';
import { viewContext } from '../testing/views';

import type { IRunRecord } from '../src/run';
import { ReplyView } from '../src/reply';

const LIMIT = { timeout: 10_000 };

installDom();

function event(
  type: string,
  data: { [key: string]: unknown },
  id = 0
): {
  id: number;
  type: string;
  data: { [key: string]: unknown };
} {
  return { id, type, data };
}

function statusOf(reply: ReplyView): string {
  return find(reply.node, '.jp-StreamChat-replyStatus').textContent ?? '';
}

function blocksOf(reply: ReplyView): HTMLElement[] {
  return Array.from(reply.node.querySelectorAll<HTMLElement>('.jp-StreamChat-block'));
}

function tailOf(reply: ReplyView): string {
  return find(reply.node, '.jp-StreamChat-tail').textContent ?? '';
}

function record(fields: Partial<IRunRecord>): IRunRecord {
  return {
    id: 'run-1',
    model: 'demo:echo',
    mode: 'detached',
    status: 'completed',
    text: 'Hello.',
    reasoning: '',
    usage: null,
    finish_reason: 'stop',
    error: null,
    notebook: null,
    conversation: 'default',
    created: '2025-01-01T00:00:00Z',
    first_token: null,
    finished: '2025-01-01T00:00:01Z',
    ...fields
  };
}

describe('ReplyView: a streaming reply', () => {
  test(
    'When a run starts streaming, Then data-status is running, the run id is on the node and the text shows',
    LIMIT,
    async () => {
      const { context } = viewContext();
      const reply = new ReplyView(context);

      reply.apply(event('run', { id: 'run-7', model: 'demo:echo' }));
      reply.apply(event('delta', { text: 'Hello' }));
      await reply.whenShown();

      assert.equal(reply.node.dataset.status, 'running');
      assert.equal(reply.node.dataset.runId, 'run-7');
      assert.equal(reply.node.getAttribute('aria-busy'), 'true');
      assert.equal(statusOf(reply), 'streaming');
      assert.equal(tailOf(reply), 'Hello');
      reply.dispose();
    }
  );

  test(
    'When more text streams, Then it is appended: finished blocks stay as rendered once, only the tail changes',
    LIMIT,
    async () => {
      const { context, record: seen } = viewContext();
      const reply = new ReplyView(context);
      reply.apply(event('delta', { text: 'First paragraph.\n\nSecond one\n' }));
      await reply.whenShown();
      const [first] = blocksOf(reply);
      assert.equal(first.textContent, 'First paragraph.');
      assert.equal(tailOf(reply), 'Second one');

      reply.apply(event('delta', { text: 'goes on.\n\nThird\n' }));
      await reply.whenShown();

      const blocks = blocksOf(reply);
      assert.deepEqual(
        blocks.map(b => b.textContent),
        ['First paragraph.', 'Second one\ngoes on.']
      );
      assert.equal(blocks[0], first, 'the finished block is the same node, not rendered again');
      assert.equal(seen.rendered.filter(s => s.startsWith('First paragraph.')).length, 1);
      assert.equal(tailOf(reply), 'Third');
      reply.dispose();
    }
  );

  test(
    'When the run is stopped, Then data-status says stopped, it is no longer busy, and the partial reply stays',
    LIMIT,
    async () => {
      const { context } = viewContext();
      const reply = new ReplyView(context);
      reply.apply(event('delta', { text: 'Partial answer' }));
      reply.apply(event('done', { status: 'stopped' }));
      await reply.whenShown();

      assert.equal(reply.node.dataset.status, 'stopped');
      assert.equal(reply.node.getAttribute('aria-busy'), 'false');
      assert.equal(statusOf(reply), 'stopped (partial reply kept)');
      assert.equal(
        blocksOf(reply)
          .map(b => b.textContent)
          .join(''),
        'Partial answer'
      );
      reply.dispose();
    }
  );

  test('When the run fails, Then its error is an alert under the reply', LIMIT, async () => {
    const { context } = viewContext();
    const reply = new ReplyView(context);
    reply.apply(
      event('done', { status: 'failed', error: { code: 'upstream_error', message: 'HTTP 500' } })
    );
    await reply.whenShown();

    const error = find(reply.node, '.jp-StreamChat-replyError');
    assert.equal(reply.node.dataset.status, 'failed');
    assert.equal(error.hidden, false);
    assert.equal(error.getAttribute('role'), 'alert');
    assert.match(error.textContent ?? '', /HTTP 500/);
    reply.dispose();
  });

  test('When a stream waits for a free connection, Then the status says so until it streams', () => {
    const { context } = viewContext();
    const reply = new ReplyView(context);

    reply.setWaiting(true);
    assert.equal(statusOf(reply), 'waiting for a free connection');
    reply.setWaiting(false);
    assert.equal(statusOf(reply), 'streaming');
    reply.dispose();
  });

  test(
    'When a finished reply has a code block, Then Copy copies its code and Insert cell inserts it',
    LIMIT,
    async () => {
      const { context, record: seen } = viewContext();
      const reply = new ReplyView(context);
      reply.showFinal({
        id: 'run-2',
        model: 'demo:echo',
        status: 'completed',
        text: 'Try this:\n\n```python\nprint(1)\n```\n'
      });
      await reply.whenShown();

      const [copy] = buttonsNamed(reply.node, 'Copy');
      const [insert] = buttonsNamed(reply.node, 'Insert cell');
      copy.click();
      insert.click();

      assert.deepEqual(seen.copied, ['print(1)']);
      assert.deepEqual(seen.insertedCode, ['print(1)']);
      assert.equal(copy.textContent, 'Copied');
      assert.equal(reply.node.dataset.status, 'completed');
      reply.dispose();
    }
  );
});

describe('ReplyView: "Saved in" as the server confirms it', () => {
  let server: TestServer;

  before(async () => {
    server = await TestServer.start();
    installDom(server.baseUrl);
  });

  after(async () => {
    await server.stop();
  });

  test(
    'When the server says the notebook holds the run, Then the reply says "Saved in" it',
    LIMIT,
    async () => {
      server.route = exchange =>
        exchange.json(
          200,
          record({ id: 'run-3', recorded: 'recorded', notebook: 'work/notes.ipynb' })
        );
      const { context } = viewContext();
      const reply = new ReplyView(context);
      reply.showFinal({ id: 'run-3', model: 'demo:echo', status: 'completed', text: 'Done.' });

      await reply.confirmRecord(new AbortController().signal);

      const note = find(reply.node, '.jp-StreamChat-replyRecord');
      assert.equal(note.hidden, false);
      assert.equal(note.textContent, 'Saved in work/notes.ipynb');
      assert.equal(note.getAttribute('role'), 'status');
      assert.equal(reply.node.dataset.recorded, 'recorded');
      const [asked] = await server.requests('/streamchat/runs/run-3');
      assert.equal(asked.query.get('wait'), 'recorded');
      assert.equal(asked.req.headers.authorization, 'token test-token');
      reply.dispose();
    }
  );

  test(
    'When the server first says pending, Then "Saving in" shows until it says recorded',
    LIMIT,
    async () => {
      let asked = 0;
      server.route = exchange => {
        asked += 1;
        const state = asked === 1 ? 'pending' : 'recorded';
        exchange.json(200, record({ id: 'run-4', recorded: state, notebook: 'a.ipynb' }));
      };
      const { context } = viewContext();
      const reply = new ReplyView(context);
      reply.showFinal({ id: 'run-4', model: 'demo:echo', status: 'completed', text: 'Done.' });
      const notes: string[] = [];
      const observer = new MutationObserver(() => notes.push(reply.node.dataset.recorded ?? ''));
      observer.observe(reply.node, { attributes: true, attributeFilter: ['data-recorded'] });

      await reply.confirmRecord(new AbortController().signal);
      await new Promise(resolve => setImmediate(resolve)); // mutation records are delivered as a microtask
      observer.disconnect();

      assert.deepEqual(notes, ['pending', 'recorded']);
      assert.equal(find(reply.node, '.jp-StreamChat-replyRecord').textContent, 'Saved in a.ipynb');
      reply.dispose();
    }
  );

  test(
    'When the notebook was deleted, Then the reply says it was not saved, as a warning',
    LIMIT,
    async () => {
      server.route = exchange =>
        exchange.json(200, record({ id: 'run-5', recorded: 'gone', notebook: 'old.ipynb' }));
      const { context } = viewContext();
      const reply = new ReplyView(context);
      reply.showFinal({ id: 'run-5', model: 'demo:echo', status: 'completed', text: 'Done.' });

      await reply.confirmRecord(new AbortController().signal);

      const note = find(reply.node, '.jp-StreamChat-replyRecord');
      assert.equal(note.textContent, 'Not saved: the notebook old.ipynb was deleted');
      assert.ok(note.classList.contains('jp-StreamChat-warning'));
      assert.equal(reply.node.dataset.recorded, 'gone');
      reply.dispose();
    }
  );

  test('When the run names no notebook, Then the reply shows no note', LIMIT, async () => {
    server.route = exchange => exchange.json(200, record({ id: 'run-6' }));
    const { context } = viewContext();
    const reply = new ReplyView(context);
    reply.showFinal({ id: 'run-6', model: 'demo:echo', status: 'completed', text: 'Done.' });

    await reply.confirmRecord(new AbortController().signal);

    assert.equal(find(reply.node, '.jp-StreamChat-replyRecord').hidden, true);
    assert.equal(reply.node.dataset.recorded, undefined);
    reply.dispose();
  });
});
