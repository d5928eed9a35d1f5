/**
 * The streaming Markdown block splitter (src/blocks.ts): a reply fed in pieces must give the
 * same blocks as the whole reply, lose and repeat nothing, and never seal inside a code fence.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { fencedCode, MarkdownBlocks } from '../src/blocks';

/** A reply with the cases that matter; its blocks as the splitter must cut them. */
const BLOCKS = [
  '# Title\nIntro paragraph\ncontinues here.\n\n',
  '- item one\n- item two\n\n  continuation of item two, after a blank line\n- item three\n\n',
  '```python\ndef f():\n\n\n    return 1  # blank lines inside a fence\n```\n',
  'Between fences.\n',
  '~~~~ text\ninside ~~~ fence\n~~~\nstill inside: a shorter fence does not close\n~~~~~\n',
  'After.\n\n',
  '``` not `a fence` here\nStill the same paragraph.\n\n',
  'Last paragraph, no newline at the end.'
];
const REPLY = BLOCKS.join('');

/**
 * The fence `text` ends inside (its opener's indentation and marker), or null: an independent
 * line-by-line reading.
 */
function openFence(text: string): string | null {
  let open: string | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (open === null) {
      const opener = /^( {0,3})(`{3,}|~{3,})(.*)$/.exec(line);
      if (opener !== null && !(opener[2][0] === '`' && opener[3].includes('`'))) {
        open = opener[1] + opener[2];
      }
    } else {
      const marker = open.trimStart();
      const closer = /^ {0,3}(`{3,}|~{3,}) *$/.exec(line);
      if (closer !== null && closer[1][0] === marker[0] && closer[1].length >= marker.length) {
        open = null;
      }
    }
  }
  return open;
}

/**
 * Feed `text` in pieces ending at `cuts` (offsets), then finish; all sealed blocks in order.
 * With `exact`, the sealed blocks and the tail must add up to the text fed so far (else
 * whitespace-only stretches between blocks may be dropped).
 */
function feed(text: string, cuts: number[], exact = true): string[] {
  const blocks = new MarkdownBlocks();
  const sealed: string[] = [];
  for (const cut of cuts) {
    const split = blocks.update(text.slice(0, cut));
    assert.equal(split.reset, false, `no reset at ${cut}`);
    sealed.push(...split.sealed);
    if (exact) {
      assert.equal(sealed.join('') + split.tail.source, text.slice(0, cut), `tail at ${cut}`);
    } else {
      assert.ok(text.slice(0, cut).endsWith(split.tail.source), `tail at ${cut}`);
    }
  }
  const end = blocks.finish(text);
  assert.equal(end.reset, false);
  sealed.push(...end.sealed);
  return sealed;
}

/**
 * Blocks are in order, and what lies between them is whitespace only; a fence left open at the
 * end is closed by the last block.
 */
function assertCover(blocks: string[], text: string): void {
  const open = openFence(text);
  if (open !== null) {
    text += `${text.endsWith('\n') ? '' : '\n'}${open}\n`;
  }
  let at = 0;
  for (const block of blocks) {
    assert.notEqual(block.trim(), '', 'no empty block');
    const found = text.indexOf(block, at);
    assert.ok(found !== -1, `block ${JSON.stringify(block)} follows at ${at}`);
    assert.equal(
      text.slice(at, found).trim(),
      '',
      `only whitespace before ${JSON.stringify(block)}`
    );
    at = found + block.length;
  }
  assert.equal(text.slice(at).trim(), '', 'only whitespace after the last block');
}

function randomGenerator(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
}

describe('MarkdownBlocks', () => {
  test('the whole reply at once gives the expected blocks', () => {
    assert.deepEqual(feed(REPLY, []), BLOCKS);
  });

  test('split at every character offset: the same blocks, all the text, nothing twice', () => {
    for (let i = 0; i <= REPLY.length; i++) {
      const blocks = feed(REPLY, [i]);
      assert.equal(blocks.join(''), REPLY, `split at ${i}`);
      assert.deepEqual(blocks, BLOCKS, `split at ${i}`);
    }
  });

  test('fed one character at a time: the same blocks, none ending inside a fence', () => {
    const blocks = feed(
      REPLY,
      Array.from({ length: REPLY.length + 1 }, (_, i) => i)
    );
    assert.deepEqual(blocks, BLOCKS);
    for (const block of blocks) {
      assert.equal(openFence(block), null, JSON.stringify(block));
    }
  });

  test('many random split points', () => {
    const random = randomGenerator(42);
    for (let round = 0; round < 200; round++) {
      const cuts = Array.from({ length: 1 + Math.floor(random() * 20) }, () =>
        Math.floor(random() * (REPLY.length + 1))
      ).sort((a, b) => a - b);
      assert.deepEqual(feed(REPLY, cuts), BLOCKS, JSON.stringify(cuts));
    }
  });

  test('random Markdown: pieces give the same blocks as the whole, covering the text, fences whole', () => {
    const lines = [
      'Some text',
      'more text',
      '',
      '',
      '- item',
      '1. step',
      '  indented continuation',
      '    indented code',
      '> quote',
      '# Heading',
      '```js',
      '```',
      '````',
      '~~~',
      '~~~ tilde `info`',
      '``` not `a fence`',
      '   ```',
      '| a | b |'
    ];
    const random = randomGenerator(1234);
    for (let round = 0; round < 300; round++) {
      const count = 1 + Math.floor(random() * 25);
      const eol = random() < 0.2 ? '\r\n' : '\n';
      let text = Array.from(
        { length: count },
        () => lines[Math.floor(random() * lines.length)]
      ).join(eol);
      if (random() < 0.5) {
        text += eol;
      }
      const whole = feed(text, [], false);
      assertCover(whole, text);
      for (const block of whole) {
        assert.equal(openFence(block), null, `${JSON.stringify(block)} in ${JSON.stringify(text)}`);
      }
      const cuts = Array.from({ length: 1 + Math.floor(random() * 10) }, () =>
        Math.floor(random() * (text.length + 1))
      ).sort((a, b) => a - b);
      assert.deepEqual(feed(text, cuts, false), whole, `${JSON.stringify(text)} cut at ${cuts}`);
    }
  });

  test('a fenced block with blank lines stays one block', () => {
    const text = 'Intro:\n```\nline 1\n\n\nline 4\n\n```\nAfter.\n';
    assert.deepEqual(feed(text, []), ['Intro:\n', '```\nline 1\n\n\nline 4\n\n```\n', 'After.\n']);
  });

  test('an indented list continuation after a blank line is not split from its list', () => {
    const text = '1. one\n\n   more of one\n\n   and more\n2. two\n\nNext paragraph.\n';
    assert.deepEqual(feed(text, []), [
      '1. one\n\n   more of one\n\n   and more\n2. two\n\n',
      'Next paragraph.\n'
    ]);
  });

  test('a fence indented in a list item stays in the item: not cut before, inside or after', () => {
    const item = '1. Install it:\n\n   ```bash\n   pip install x\n\n   ```\n   Then restart.\n';
    const text = `${item}\n2. Run it\n\nDone.\n`;
    const expected = [`${item}\n`, '2. Run it\n\n', 'Done.\n'];
    for (let cut = 0; cut <= text.length; cut++) {
      assert.deepEqual(feed(text, [cut]), expected, `cut at ${cut}`);
    }
  });

  test('the open tail shows a nested fence as Markdown, and finish() closes it at its indentation', () => {
    const text = '- Example:\n  ```js\n  let a = 1;\n';
    const blocks = new MarkdownBlocks();
    assert.deepEqual(blocks.update(text).tail, { source: text, fence: null });
    assert.deepEqual(blocks.finish(text).sealed, [`${text}  \`\`\`\n`]);
  });

  test('an indented fence that starts a block is a block of its own', () => {
    const text = '```\na\n```\n   ```\n   code\n   ```\nAfter.\n';
    assert.deepEqual(feed(text, []), ['```\na\n```\n', '   ```\n   code\n   ```\n', 'After.\n']);
  });

  test('the tail reports the open fence: its info string and the code so far', () => {
    const opener = '```python\n';
    const codeStart = REPLY.indexOf(opener) + opener.length;
    const closeEnd = REPLY.indexOf('```\n', codeStart) + 4;
    const tildeStart = REPLY.indexOf('~~~~ text\n') + '~~~~ text\n'.length;
    const tildeEnd = REPLY.indexOf('~~~~~\n') + '~~~~~\n'.length;
    const blocks = new MarkdownBlocks();
    for (let i = 0; i <= REPLY.length; i++) {
      const { tail } = blocks.update(REPLY.slice(0, i));
      if (i >= codeStart && i < closeEnd) {
        assert.deepEqual(
          tail.fence,
          { info: 'python', code: REPLY.slice(codeStart, i) },
          `at ${i}`
        );
        assert.equal(tail.source, REPLY.slice(codeStart - opener.length, i));
      } else if (i >= tildeStart && i < tildeEnd) {
        assert.deepEqual(tail.fence, { info: 'text', code: REPLY.slice(tildeStart, i) }, `at ${i}`);
      } else {
        assert.equal(tail.fence, null, `no fence at ${i}: ${JSON.stringify(REPLY.slice(0, i))}`);
      }
    }
  });

  test('~~~ fences, closed by a longer fence of the same character only', () => {
    const blocks = new MarkdownBlocks();
    const open = blocks.update('~~~ sh\necho ```\n```\n~~\n');
    assert.deepEqual(open.sealed, []);
    assert.deepEqual(open.tail.fence, { info: 'sh', code: 'echo ```\n```\n~~\n' });
    const closed = blocks.update('~~~ sh\necho ```\n```\n~~\n~~~~  \nText');
    assert.deepEqual(closed.sealed, ['~~~ sh\necho ```\n```\n~~\n~~~~  \n']);
    assert.equal(closed.tail.fence, null);
    assert.equal(closed.tail.source, 'Text');
  });

  test('a longer backtick fence needs a closing fence at least as long', () => {
    const text = '````md\n```js\nx\n```\n````\n';
    assert.deepEqual(feed(text, [8, 14, 20]), [text]);
  });

  test('an info string with a backtick does not open a ``` fence (it does a ~~~ one)', () => {
    const blocks = new MarkdownBlocks();
    const inline = blocks.update('``` not `a fence`\nText\n\n');
    assert.equal(inline.tail.fence, null);
    assert.deepEqual(inline.sealed, []);
    const tilde = new MarkdownBlocks().update('~~~ a`b\ncode\n');
    assert.deepEqual(tilde.tail.fence, { info: 'a`b', code: 'code\n' });
  });

  test('a fence opener ends the paragraph before it', () => {
    assert.deepEqual(feed('Look:\n```\nx\n```\n', []), ['Look:\n', '```\nx\n```\n']);
  });

  test('CRLF line ends', () => {
    const text = 'a\r\n\r\nb\r\n```\r\nx\r\n\r\ny\r\n```\r\nc';
    assert.deepEqual(feed(text, [3, 9, 20]), [
      'a\r\n\r\n',
      'b\r\n',
      '```\r\nx\r\n\r\ny\r\n```\r\n',
      'c'
    ]);
  });

  test('a reply ending in a closing fence without a newline gets no extra fence', () => {
    // Common: replies often end right after the closing ```. Closed again by finish(), the
    // reply would end with an opened, empty code block.
    assert.deepEqual(feed('Code:\n```js\nx\n```', []), ['Code:\n', '```js\nx\n```']);
    assert.deepEqual(feed('~~~\nx\n~~~~ ', [5]), ['~~~\nx\n~~~~ ']);
  });

  test('finish() ends the last line: a paragraph after a blank line is its own block', () => {
    assert.deepEqual(feed('One.\n\nTwo.', []), ['One.\n\n', 'Two.']);
    assert.deepEqual(feed('- a\n\n  b', []), ['- a\n\n  b']);
  });

  test('finish() closes a fence left open', () => {
    const blocks = new MarkdownBlocks();
    assert.deepEqual(blocks.update('Text\n\n````js\nlet a').sealed, ['Text\n\n']);
    assert.deepEqual(blocks.finish('Text\n\n````js\nlet a = 1;'), {
      sealed: ['````js\nlet a = 1;\n````\n'],
      reset: false
    });
  });

  test('a text that does not extend the previous one starts over with reset: true', () => {
    const blocks = new MarkdownBlocks();
    assert.deepEqual(blocks.update('First.\n\nSecond.\n\nThi').sealed, [
      'First.\n\n',
      'Second.\n\n'
    ]);
    const same = blocks.update('First.\n\nSecond.\n\nThird');
    assert.equal(same.reset, false);
    assert.deepEqual(same.sealed, []);

    const other = blocks.update('Fresh.\n\nText\n');
    assert.equal(other.reset, true);
    assert.deepEqual(other.sealed, ['Fresh.\n\n']);
    assert.deepEqual(other.tail, { source: 'Text\n', fence: null });

    const shorter = blocks.update('Fre');
    assert.equal(shorter.reset, true);
    assert.deepEqual(shorter.tail, { source: 'Fre', fence: null });

    const inFence = new MarkdownBlocks();
    inFence.update('```\ncode\n');
    const replaced = inFence.update('Plain\n');
    assert.equal(replaced.reset, true);
    assert.equal(replaced.tail.fence, null, 'the open fence of the old text is forgotten');

    const finished = new MarkdownBlocks();
    finished.update('Old.\n\nOld tail');
    assert.deepEqual(finished.finish('New.\n\nNew tail'), {
      sealed: ['New.\n\n', 'New tail'],
      reset: true
    });
  });
});

describe('fencedCode', () => {
  test('a fenced block gives its info string and its code, without the last newline', () => {
    assert.deepEqual(fencedCode('```python\ndef f():\n\n    return 1\n```\n'), {
      info: 'python',
      code: 'def f():\n\n    return 1'
    });
    assert.deepEqual(fencedCode('~~~~ text extra words\na\n~~~~~'), {
      info: 'text extra words',
      code: 'a'
    });
    assert.deepEqual(fencedCode('```\r\nx\r\n```\r\n'), { info: '', code: 'x' });
    assert.deepEqual(fencedCode('```\n```\n'), { info: '', code: '' });
  });

  test("the opener's indentation is removed from the code lines, no more", () => {
    assert.deepEqual(fencedCode('  ```js\n    a\n b\nc\n  ```\n'), {
      info: 'js',
      code: '  a\nb\nc'
    });
  });

  test('anything but one whole fence is no fenced block', () => {
    for (const block of [
      'Just a paragraph\n',
      '```python\nopen fence\n',
      '``` not `a fence`\n```\n',
      '```\na\n```\nmore text\n',
      '```\na\n```\n```\nb\n```\n',
      '````\na\n```\n',
      'Text\n```\na\n```\n'
    ]) {
      assert.equal(fencedCode(block), null, JSON.stringify(block));
    }
  });

  test('every fence the splitter seals is one fenced block with its code', () => {
    const sealed = feed(REPLY, []);
    const fences = sealed.map(fencedCode).filter(fence => fence !== null);
    assert.deepEqual(fences, [
      { info: 'python', code: 'def f():\n\n\n    return 1  # blank lines inside a fence' },
      { info: 'text', code: 'inside ~~~ fence\n~~~\nstill inside: a shorter fence does not close' }
    ]);
  });
});
