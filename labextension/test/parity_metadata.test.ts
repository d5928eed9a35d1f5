/**
 * Parity: merging turns into `metadata.streamchat`, by the panel's mergeTurn (src/metadata.ts).
 *
 * The same fixtures (tests/parity/metadata/*.json) run in pytest against the server's
 * `merged_streamchat` (tests/test_parity_metadata.py). Each fixture is a section (absent: a
 * notebook without one) and merges applied in order, each to the result of the last one that
 * changed something; `expect: null` means "already recorded: nothing to write".
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { ITurn, mergeTurn } from '../src/metadata';

/** The repository's tests/parity/metadata folder, from test-build/test/. */
const FOLDER = path.resolve(__dirname, '../../../tests/parity/metadata');

interface IFixture {
  section?: unknown;
  merges: { conversation: string; turn: ITurn; expect: unknown }[];
}

const files = fs.readdirSync(FOLDER).filter(name => name.endsWith('.json'));

describe('parity: metadata merges (tests/parity/metadata)', () => {
  test('there are metadata fixtures', () => {
    assert.ok(files.length >= 5);
  });

  for (const file of files.sort()) {
    test(`${file}: merging the turns gives the fixture's section`, () => {
      const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();
      // Given the fixture's section, parsed as the page parses a notebook
      const fixture = JSON.parse(fs.readFileSync(path.join(FOLDER, file), 'utf8')) as IFixture;
      let section = fixture.section;
      fixture.merges.forEach((merge, step) => {
        const before = JSON.stringify(section);
        // When a turn is merged
        const merged = mergeTurn(section, merge.conversation, merge.turn);
        // Then the section (as JSON, what the file gets) is the fixture's, or null
        const written = merged === null ? null : JSON.parse(JSON.stringify(merged));
        assert.deepEqual(written, merge.expect, `${file}: merge ${step}`);
        // And the section it was given is unchanged
        assert.equal(JSON.stringify(section), before, `${file}: merge ${step} changed its input`);
        if (merged !== null) {
          section = merged;
        }
      });
      // And nothing reached Object.prototype
      assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeBefore);
    });
  }
});
