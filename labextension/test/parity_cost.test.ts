/**
 * Parity: a cost in USD -> the text a reply, a compare summary and the total show, through the
 * panel's costText (src/steering.ts).
 *
 * The same fixtures (tests/parity/cost/*.json) run in pytest against the widgets' cost_text
 * (tests/test_parity_cost.py): a change to either side that breaks parity fails there or here.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { costText } from '../src/steering';

/** The repository's tests/parity/<kind> folder, from test-build/test/. */
const FOLDER = path.resolve(__dirname, '../../../tests/parity/cost');

interface IFixture {
  cases: { usd: number | null; text: string }[];
}

const files = fs.readdirSync(FOLDER).filter(name => name.endsWith('.json'));

describe('parity: a cost -> its text (tests/parity/cost)', () => {
  test('there are cost fixtures', () => {
    assert.ok(files.length >= 5);
  });

  for (const file of files.sort()) {
    test(`${file}: each cost reads as the fixture says`, () => {
      const fixture = JSON.parse(fs.readFileSync(path.join(FOLDER, file), 'utf8')) as IFixture;
      assert.ok(fixture.cases.length > 0);
      for (const { usd, text } of fixture.cases) {
        assert.equal(costText(usd), text, `${file}: ${usd}`);
      }
    });
  }
});
