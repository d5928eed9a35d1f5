/**
 * Parity: a streamed Markdown reply -> finished blocks and the open tail, as the panel splits it
 * (src/blocks.ts).
 *
 * The same fixtures (tests/parity/markdown/*.json) run in pytest against the kernel widgets'
 * splitter (tests/test_parity_markdown.py). Each fixture is a text, prefixes of it as a stream
 * delivers them (`steps`: the blocks finished so far and the open tail), and the blocks once the
 * reply has ended.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { MarkdownBlocks } from '../src/blocks';

/** The repository's tests/parity/markdown folder, from test-build/test/. */
const FOLDER = path.resolve(__dirname, '../../../tests/parity/markdown');

interface IFixture {
  text: string;
  steps: { length: number; finished: string[]; tail: string }[];
  blocks: string[];
}

const files = fs.readdirSync(FOLDER).filter(name => name.endsWith('.json'));

function load(file: string): IFixture {
  return JSON.parse(fs.readFileSync(path.join(FOLDER, file), 'utf8')) as IFixture;
}

describe('parity: Markdown blocks and open tail (tests/parity/markdown)', () => {
  test('there are markdown fixtures', () => {
    assert.ok(files.length >= 10);
  });

  for (const file of files.sort()) {
    test(`${file}: a streamed reply is split into the fixture's blocks`, () => {
      const fixture = load(file);
      const splitter = new MarkdownBlocks();
      const finished: string[] = [];
      for (const step of fixture.steps) {
        // When the stream has delivered a prefix of the reply
        const split = splitter.update(fixture.text.slice(0, step.length));
        finished.push(...split.sealed);
        // Then the finished blocks and the open tail are the fixture's
        const where = `${file} at ${step.length}`;
        assert.deepEqual(finished, step.finished, where);
        assert.equal(split.tail.source, step.tail, where);
      }
      // When the reply ends, Then its blocks are the fixture's
      assert.deepEqual([...finished, ...splitter.finish(fixture.text).sealed], fixture.blocks);
    });

    test(`${file}: a reply cut anywhere gives the same blocks`, () => {
      const fixture = load(file);
      for (let cut = 0; cut <= fixture.text.length; cut++) {
        const splitter = new MarkdownBlocks();
        const blocks = splitter.update(fixture.text.slice(0, cut)).sealed;
        blocks.push(...splitter.finish(fixture.text).sealed);
        assert.deepEqual(blocks, fixture.blocks, `${file} cut at ${cut}`);
      }
    });
  }
});
