/**
 * Parity: merging turns into `metadata.streamchat` and reading a conversation's tree, by the
 * panel's mergeTurn, readConversation and branch (src/metadata.ts).
 *
 * The same fixtures (tests/parity/metadata/*.json) run in pytest against the server's
 * `merged_streamchat`, `read_conversation` and `branch` (tests/test_parity_metadata.py). Each
 * fixture is a section (absent: a notebook without one) and merges applied in order, each to the
 * result of the last one that changed something: `expect` is the section written (`null`: already
 * recorded, nothing to write), `refused` the one-line reason a section that may not be written is
 * left alone, word for word. `reads` (optional): a conversation's active leaf and branch, root first.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import {
  branch,
  ITurn,
  mergeTurn,
  readConversation,
  UnreadableSectionError
} from '../src/metadata';

/** The repository's tests/parity/metadata folder, from test-build/test/. */
const FOLDER = path.resolve(__dirname, '../../../tests/parity/metadata');

interface IFixture {
  section?: unknown;
  merges: { conversation: string; turn: ITurn; expect?: unknown; refused?: string }[];
  reads?: { conversation: string; active: string | null; branch: string[] }[];
}

const files = fs.readdirSync(FOLDER).filter(name => name.endsWith('.json'));

describe('parity: metadata merges and reads (tests/parity/metadata)', () => {
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
        let merged: ReturnType<typeof mergeTurn> = null;
        try {
          merged = mergeTurn(section, merge.conversation, merge.turn);
        } catch (error) {
          // Then a section that may not be written is refused, saying why
          assert.ok(error instanceof UnreadableSectionError, `${file}: merge ${step}: ${error}`);
          assert.equal(error.reason, merge.refused, `${file}: merge ${step}`);
          assert.equal(JSON.stringify(section), before, `${file}: merge ${step} changed its input`);
          return;
        }
        assert.equal(merge.refused, undefined, `${file}: merge ${step} was not refused`);
        // Then the section (as JSON, what the file gets) is the fixture's, or null
        const written = merged === null ? null : JSON.parse(JSON.stringify(merged));
        assert.deepEqual(written, merge.expect, `${file}: merge ${step}`);
        // And the section it was given is unchanged
        assert.equal(JSON.stringify(section), before, `${file}: merge ${step} changed its input`);
        if (merged !== null) {
          section = merged;
        }
      });
      // And reading the result gives the fixture's active leaf and branch
      for (const read of fixture.reads ?? []) {
        const conversation = readConversation(section, read.conversation);
        assert.equal(conversation.active, read.active, `${file}: ${read.conversation}`);
        const runs = branch(conversation.turns, conversation.active).map(t => t.run);
        assert.deepEqual(runs, read.branch, `${file}: ${read.conversation}`);
      }
      // And nothing reached Object.prototype
      assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeBefore);
    });
  }
});
