/**
 * Parity: SSE events -> reply state and stats line, through the panel's RunState (src/run.ts).
 *
 * The same fixtures (tests/parity/stats/*.json) run in pytest against the kernel pane's event
 * handling (tests/test_parity_stats.py): a change to either side that breaks parity fails there
 * or here. Times in the fixtures are milliseconds after the request.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { RunState } from '../src/run';

/** The repository's tests/parity/<kind> folder, from test-build/test/. */
const FOLDER = path.resolve(__dirname, '../../../tests/parity/stats');

interface IExpect {
  text: string;
  reasoning: string;
  status: string;
  partial: boolean;
  usage: { [key: string]: number };
  output_tokens: number;
  ttft: number | null;
  tokens_per_second: number | null;
  stats: string;
}

interface IFixture {
  events: { at: number; event: string; data: { [key: string]: unknown } }[];
  checks: { after: number; now: number; expect: IExpect }[];
}

function near(actual: number | null, expected: number | null, where: string): void {
  if (expected === null || actual === null) {
    assert.equal(actual, expected, where);
  } else {
    assert.ok(Math.abs(actual - expected) < 1e-6, `${where}: ${actual} is not ${expected}`);
  }
}

const files = fs.readdirSync(FOLDER).filter(name => name.endsWith('.json'));

describe('parity: SSE events -> reply state and stats line (tests/parity/stats)', () => {
  test('there are stats fixtures', () => {
    assert.ok(files.length >= 5);
  });

  for (const file of files.sort()) {
    test(`${file}: the events give the fixture's reply state and stats line`, () => {
      const fixture = JSON.parse(fs.readFileSync(path.join(FOLDER, file), 'utf8')) as IFixture;
      for (const check of fixture.checks) {
        const where = `${file}: after ${check.after} events at ${check.now} ms`;
        // Given the reply has applied the first `after` events, each at its time
        const state = new RunState(0);
        fixture.events.slice(0, check.after).forEach((event, index) => {
          state.apply({ id: index + 1, type: event.event, data: event.data }, event.at);
        });
        // Then its state and numbers, read at `now`, are the fixture's
        const expect = check.expect;
        assert.equal(state.text, expect.text, where);
        assert.equal(state.reasoning, expect.reasoning, where);
        assert.equal(state.status, expect.status, where);
        assert.equal(state.partial, expect.partial, where);
        assert.deepEqual({ ...state.usage }, expect.usage, where);
        assert.equal(state.outputTokens, expect.output_tokens, where);
        near(state.timeToFirstToken, expect.ttft, where);
        near(state.tokensPerSecond(check.now), expect.tokens_per_second, where);
        // And the reply header's stats line says the fixture's words
        assert.equal(state.statsLine(check.now), expect.stats, where);
      }
    });
  }
});
