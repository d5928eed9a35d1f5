/**
 * The state of a run as its events arrive (src/run.ts), with an injected clock.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { IRunRecord, RunState, TERMINAL_STATUSES } from '../src/run';
import type { IRunEvent } from '../src/sse';

let nextId = 1;
function ev(type: string, data: { [key: string]: unknown }): IRunEvent {
  return { id: nextId++, type, data };
}

describe('RunState', () => {
  test('starts running, empty, with the clock it was given', () => {
    const state = new RunState(1000);
    assert.equal(state.status, 'running');
    assert.equal(state.finished, false);
    assert.equal(state.text, '');
    assert.equal(state.startedAt, 1000);
    assert.equal(state.timeToFirstToken, null);
    assert.equal(state.tokensPerSecond(5000), null);
    assert.equal(state.statsLine(5000), '');
    assert.equal(state.errorLine, '');
  });

  test('run, reasoning, delta, usage and done build text, status and usage', () => {
    const state = new RunState(1000);
    assert.equal(
      state.apply(
        ev('run', { id: 'r1', model: 'demo:echo', mode: 'detached', created: 'x' }),
        1100
      ),
      true
    );
    assert.equal(state.id, 'r1');
    assert.equal(state.model, 'demo:echo');
    assert.equal(state.firstTokenAt, null, 'the run event is no token');

    state.apply(ev('reasoning', { text: 'Let me ' }), 1500);
    state.apply(ev('reasoning', { text: 'think.' }), 1600);
    assert.equal(state.reasoning, 'Let me think.');
    assert.equal(state.firstTokenAt, 1500, 'reasoning counts as the first token');

    state.apply(ev('delta', { text: 'Hello' }), 2000);
    state.apply(ev('delta', { text: ', world' }), 2500);
    state.apply(ev('delta', { text: '!' }), 3000);
    assert.equal(state.text, 'Hello, world!');
    assert.equal(state.deltas, 3);
    assert.equal(state.firstTokenAt, 1500);
    assert.equal(state.outputTokens, 3, 'deltas estimate the tokens until usage arrives');

    state.apply(ev('usage', { input_tokens: 10, output_tokens: 4 }), 3100);
    assert.deepEqual(state.usage, { input_tokens: 10, output_tokens: 4 });
    assert.equal(state.outputTokens, 4);
    assert.equal(state.finished, false);

    state.apply(
      ev('done', { status: 'completed', finish_reason: 'stop', usage: { output_tokens: 5 } }),
      3500
    );
    assert.equal(state.status, 'completed');
    assert.equal(state.finished, true);
    assert.deepEqual(state.usage, { input_tokens: 10, output_tokens: 5 }, 'usage merged');
    assert.equal(state.error, null);
    assert.equal(state.finishedAt, 3500);
  });

  test('timeToFirstToken and tokensPerSecond with an injected clock', () => {
    const state = new RunState(10_000);
    state.apply(ev('delta', { text: 'a' }), 10_750);
    assert.equal(state.timeToFirstToken, 0.75);
    assert.equal(state.tokensPerSecond(10_760), null, 'too soon after the first token to tell');
    for (let i = 0; i < 9; i++) {
      state.apply(ev('delta', { text: 'b' }), 11_000 + i * 100);
    }
    assert.equal(state.outputTokens, 10);
    assert.equal(state.tokensPerSecond(12_750), 5, '10 tokens in 2 s');
    assert.equal(state.statsLine(12_750), 'first token 0.75 s · 5.0 tok/s · 10 tokens');

    state.apply(ev('usage', { output_tokens: 20 }), 12_750);
    state.apply(ev('done', { status: 'completed' }), 14_750);
    assert.equal(state.tokensPerSecond(99_999), 5, 'frozen at done: 20 tokens in 4 s');
    assert.equal(state.tokensPerSecond(), 5);
  });

  test('time to first token is never negative (clocks of server and page differ)', () => {
    const state = new RunState(5000);
    state.apply(ev('delta', { text: 'a' }), 4000);
    assert.equal(state.timeToFirstToken, 0);
  });

  test('a snapshot replaces text and reasoning; later deltas append', () => {
    const state = new RunState(0);
    state.apply(ev('delta', { text: 'stale' }), 1);
    state.apply(ev('snapshot', { text: 'The quick ', reasoning: 'Hm.' }), 2);
    assert.equal(state.text, 'The quick ');
    assert.equal(state.reasoning, 'Hm.');
    state.apply(ev('delta', { text: 'fox' }), 3);
    assert.equal(state.text, 'The quick fox');
    state.apply(ev('snapshot', {}), 4);
    assert.equal(state.text, '');
  });

  test('done with an error: status, error, errorLine', () => {
    const state = new RunState(0);
    state.apply(ev('delta', { text: 'partial' }), 1);
    state.apply(
      ev('done', {
        status: 'failed',
        finish_reason: null,
        error: { code: 'upstream_error', message: 'HTTP 529 overloaded', upstream_status: 529 }
      }),
      2
    );
    assert.equal(state.status, 'failed');
    assert.deepEqual(state.error, {
      code: 'upstream_error',
      message: 'HTTP 529 overloaded',
      upstream_status: 529
    });
    assert.equal(state.errorLine, 'upstream_error: HTTP 529 overloaded');
    assert.equal(state.text, 'partial', 'the text so far is kept');
  });

  test('done without a status is a failure; a stopped run has no error', () => {
    const broken = new RunState(0);
    broken.apply(ev('done', {}), 1);
    assert.equal(broken.status, 'failed');
    assert.equal(broken.finished, true);

    const stopped = new RunState(0);
    stopped.apply(ev('done', { status: 'stopped', error: null }), 1);
    assert.equal(stopped.status, 'stopped');
    assert.equal(stopped.error, null);
    assert.ok(TERMINAL_STATUSES.includes(stopped.status));
    assert.ok(!TERMINAL_STATUSES.includes('running'));
  });

  test('unknown events change nothing; malformed fields are ignored', () => {
    const state = new RunState(0);
    assert.equal(state.apply(ev('mystery', { text: 'x' }), 1), false);
    state.apply(ev('delta', { text: 42 }), 2);
    assert.equal(state.text, '');
    state.apply(ev('run', { id: 7 }), 3);
    assert.equal(state.id, '');
    assert.equal(state.status, 'running');
  });

  test('applyRecord takes id, model, start and first-token times from a run record', () => {
    const record: IRunRecord = {
      id: 'r9',
      model: 'openai:gpt',
      mode: 'detached',
      status: 'running',
      text: '',
      reasoning: '',
      usage: null,
      finish_reason: null,
      error: null,
      notebook: null,
      conversation: null,
      created: '2025-01-01T00:00:00.000Z',
      first_token: '2025-01-01T00:00:01.250Z',
      finished: null
    };
    const state = new RunState(0);
    state.applyRecord(record);
    assert.equal(state.id, 'r9');
    assert.equal(state.model, 'openai:gpt');
    assert.equal(state.startedAt, Date.parse('2025-01-01T00:00:00.000Z'));
    assert.equal(state.timeToFirstToken, 1.25);

    const bad = new RunState(123);
    bad.applyRecord({ ...record, created: 'not a date', first_token: null });
    assert.equal(bad.startedAt, 123);
    assert.equal(bad.firstTokenAt, null);
  });
});
