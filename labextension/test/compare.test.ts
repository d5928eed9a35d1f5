/**
 * Compare panes (src/compare.ts) in a DOM (jsdom), streaming from a real HTTP server on 127.0.0.1
 * that speaks `POST {baseUrl}streamchat/stream` (SSE) and `GET streamchat/runs/{id}`, and records
 * when the client closed each stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { buttonsNamed, installDom } from '../testing/dom';
import { Exchange, TestServer } from '../testing/server';
import { until, viewContext } from '../testing/views';

import { CompareView, MAX_PANES } from '../src/compare';
import type { IModelInfo } from '../src/models';

const LIMIT = { timeout: 10_000 };

installDom();

const MODELS: IModelInfo[] = ['a', 'b', 'c', 'd', 'e'].map(id => ({
  id: `demo:${id}`,
  provider: 'demo',
  name: `Model ${id.toUpperCase()}`
}));

function pickers(view: CompareView): HTMLSelectElement[] {
  return Array.from(view.node.querySelectorAll<HTMLSelectElement>('.jp-StreamChat-pickers select'));
}

function addButton(view: CompareView): HTMLButtonElement {
  return buttonsNamed(view.node, 'Add model')[0];
}

function panes(view: CompareView): HTMLElement[] {
  return Array.from(view.node.querySelectorAll<HTMLElement>('.jp-StreamChat-pane'));
}

describe('CompareView: models', () => {
  test('When models are added, Then up to 4 are offered and Add model is disabled at 4', () => {
    const view = new CompareView(viewContext().context);
    view.setModels(MODELS, []);
    assert.equal(pickers(view).length, 2, 'two models to start with');

    while (!addButton(view).disabled) {
      addButton(view).click();
    }

    assert.equal(pickers(view).length, MAX_PANES);
    assert.deepEqual(
      pickers(view).map(s => s.getAttribute('aria-label')),
      ['Model 1', 'Model 2', 'Model 3', 'Model 4']
    );
  });

  test('When a model is removed, Then the others stay chosen and Add model is enabled again', () => {
    const view = new CompareView(viewContext().context);
    view.setModels(MODELS, ['demo:c', 'demo:d', 'demo:e', 'demo:a']);
    assert.deepEqual(
      pickers(view).map(s => s.value),
      ['demo:c', 'demo:d', 'demo:e', 'demo:a']
    );
    assert.equal(addButton(view).disabled, true);

    const [remove] = Array.from(view.node.querySelectorAll('button')).filter(
      b => b.title === 'Remove model 3'
    );
    remove.click();

    assert.deepEqual(
      pickers(view).map(s => s.value),
      ['demo:c', 'demo:d', 'demo:a']
    );
    assert.equal(addButton(view).disabled, false);
  });
});

describe('CompareView: streaming panes', () => {
  let server: TestServer;

  before(async () => {
    server = await TestServer.start();
    installDom(server.baseUrl);
  });

  after(async () => {
    await server.stop();
  });

  test(
    'When Stop all is pressed while panes stream, Then every stream is closed and each pane shows the record the server kept',
    LIMIT,
    async () => {
      let runs = 0;
      server.route = async (exchange: Exchange) => {
        if (exchange.path === '/streamchat/stream') {
          const { model } = JSON.parse(exchange.body) as { model: string };
          runs += 1;
          exchange.startEvents();
          await exchange.event('run', { id: `run-${runs}`, model }, 1);
          await exchange.event('delta', { text: `Partial from ${model}` }, 2);
          return; // holds the stream open, as a model that is still writing
        }
        const id = exchange.path.split('/').pop() ?? '';
        const model = id === 'run-1' ? 'demo:a' : 'demo:b';
        exchange.json(200, {
          id,
          model,
          mode: 'direct',
          status: 'stopped',
          text: `Partial from ${model}`,
          reasoning: '',
          usage: { output_tokens: 3 },
          finish_reason: null,
          error: null,
          notebook: null,
          conversation: 'x',
          created: '2025-01-01T00:00:00Z',
          first_token: '2025-01-01T00:00:00.5Z',
          finished: '2025-01-01T00:00:01Z'
        });
      };
      const view = new CompareView(viewContext().context);
      view.setModels(MODELS, ['demo:a', 'demo:b']);

      const compared = view.compare('Which is faster?');
      const streams = await server.requests('/streamchat/stream', 2);
      await until(view.node, () => panes(view).every(p => p.textContent?.includes('Partial from')));
      assert.equal(view.running, true);
      view.stopAll();
      const stops = buttonsNamed(view.node, 'Stop');
      await Promise.all(streams.map(s => s.closedByClient));
      await compared;

      assert.equal(stops.length, 2);
      assert.ok(stops.every(b => b.disabled));
      assert.equal(view.running, false);
      assert.deepEqual(
        panes(view).map(p => [p.dataset.runId, p.dataset.status]),
        [
          ['run-1', 'stopped'],
          ['run-2', 'stopped']
        ]
      );
      assert.equal(buttonsNamed(view.node, 'Stop').length, 0, 'an ended pane has no Stop');
      assert.equal(buttonsNamed(view.node, 'Insert').length, 2, 'a pane with text offers Insert');
      const bodies = streams.map(
        s => JSON.parse(s.body) as { prompt: string; conversation: string }
      );
      assert.deepEqual(
        bodies.map(b => b.prompt),
        ['Which is faster?', 'Which is faster?']
      );
      assert.equal(
        bodies[0].conversation,
        bodies[1].conversation,
        'one conversation for the comparison'
      );
      const rows = Array.from(
        view.node.querySelectorAll<HTMLElement>('table[aria-label="Summary"] tbody tr')
      );
      assert.deepEqual(
        rows.map(r => r.dataset.runId),
        ['run-1', 'run-2']
      );
    }
  );

  test(
    'When the server refuses a pane, Then that pane fails with its message and the other completes',
    LIMIT,
    async () => {
      server.route = async (exchange: Exchange) => {
        const { model } = JSON.parse(exchange.body) as { model: string };
        if (model === 'demo:b') {
          exchange.json(400, { message: 'unknown model demo:b' });
          return;
        }
        exchange.startEvents();
        await exchange.event('run', { id: 'run-ok', model }, 1);
        await exchange.event('delta', { text: 'All done.' }, 2);
        await exchange.event('done', { status: 'completed' }, 3);
        exchange.res.end();
      };
      const view = new CompareView(viewContext().context);
      view.setModels(MODELS, ['demo:a', 'demo:b']);

      await view.compare('Hi');

      const [ok, refused] = panes(view);
      assert.equal(ok.dataset.status, 'completed');
      assert.equal(refused.dataset.status, 'failed');
      assert.match(refused.textContent ?? '', /unknown model demo:b/);
    }
  );
});
