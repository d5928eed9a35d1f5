/**
 * Steering a conversation, the pure parts: the tree of turns and the leaf a page shows
 * (src/tree.ts), the parameters form (src/steering.ts), the inserted cells and the replay note
 * (src/exporting.ts), and switching the active leaf in the metadata (src/metadata.ts withActive).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { attachmentName, IExportTurn, replayNote, turnMarkdown } from '../src/exporting';
import { readConversation, UnreadableSectionError, withActive } from '../src/metadata';
import { costText, formOf, paramsText, readSteering, totalText } from '../src/steering';
import { ConversationTree, ITreeNode, LeafChoice } from '../src/tree';

function node(run: string, parent: string | null, created: string): ITreeNode {
  return { key: run, run, parent, created };
}

// a -> b (and its regenerated sibling b2) -> c after b2; e: an edited first prompt
const NODES = [
  node('a', null, '01'),
  node('b', 'a', '02'),
  node('b2', 'a', '03'),
  node('c', 'b2', '04'),
  node('e', null, '05')
];

describe('ConversationTree', () => {
  test('When a branch is read, Then it runs from the first turn down to the leaf', () => {
    const tree = new ConversationTree(NODES);
    assert.deepEqual(
      tree.branch('c').map(n => n.key),
      ['a', 'b2', 'c']
    );
    assert.deepEqual(tree.branch(null), []);
    assert.deepEqual(tree.branch('unknown'), []);
  });

  test('When turns share a parent, Then they are alternatives in the order they were made', () => {
    const tree = new ConversationTree(NODES);
    const b2 = tree.get('b2')!;
    assert.deepEqual(
      tree.alternatives(b2).siblings.map(n => n.key),
      ['b', 'b2']
    );
    assert.equal(tree.alternatives(b2).index, 1);
    assert.deepEqual(
      tree.alternatives(tree.get('a')!).siblings.map(n => n.key),
      ['a', 'e'],
      'an edited first prompt is an alternative of the first turn'
    );
  });

  test('When the user switches to an alternative, Then the leaf is the newest turn below it', () => {
    const tree = new ConversationTree(NODES);
    assert.equal(tree.leafUnder(tree.get('a')!).key, 'c');
    assert.equal(tree.leafUnder(tree.get('b')!).key, 'b');
    assert.equal(tree.leafUnder(tree.get('e')!).key, 'e');
  });

  test('When a parent names no turn, Then its turn starts its branch', () => {
    const tree = new ConversationTree([node('x', 'gone', '01'), node('y', 'x', '02')]);
    assert.deepEqual(
      tree.branch('y').map(n => n.key),
      ['x', 'y']
    );
    assert.equal(tree.alternatives(tree.get('x')!).siblings.length, 1);
  });

  test('When a request is not named yet, Then a new turn follows the last named run', () => {
    const pending: ITreeNode = { key: 'local:1', run: null, parent: 'c', created: '06' };
    const tree = new ConversationTree([...NODES, pending]);
    const branch = tree.branch('local:1');
    assert.deepEqual(
      branch.map(n => n.key),
      ['a', 'b2', 'c', 'local:1']
    );
    assert.equal(ConversationTree.lastRun(branch), 'c');
    assert.equal(ConversationTree.lastRun([]), null);
    assert.equal(tree.newest()?.key, 'local:1');
  });
});

describe('LeafChoice', () => {
  test("When the page chose nothing, Then the document's active leaf shows, else the newest turn", () => {
    const tree = new ConversationTree(NODES);
    const leaves = new LeafChoice<ITreeNode>(() => true);
    assert.equal(leaves.leaf('c1', 'b', tree), 'b');
    assert.equal(leaves.leaf('c2', null, tree), 'e');
  });

  test('When the page started a run that is not recorded, Then it shows until the document records it', () => {
    const recorded = new Set(['a', 'b', 'b2', 'c', 'e']);
    const leaves = new LeafChoice<ITreeNode>(n => recorded.has(n.key));
    const live = { key: 'local:1', run: null, parent: 'c', created: '06' };
    let tree = new ConversationTree([...NODES, live]);
    leaves.leaf('c1', 'c', tree);
    leaves.choose('c1', 'local:1');
    leaves.rekey('local:1', 'r9');
    const named = { ...live, key: 'r9', run: 'r9' };
    tree = new ConversationTree([...NODES, named]);
    assert.equal(leaves.leaf('c1', 'e', tree), 'r9', 'another turn recorded meanwhile');
    recorded.add('r9');
    assert.equal(leaves.leaf('c1', 'e', tree), 'r9', 'the document did not change again');
    assert.equal(leaves.leaf('c1', 'r9', tree), 'r9');
    assert.equal(leaves.leaf('c1', 'b', tree), 'b', 'then the document wins');
  });
});

describe('readSteering', () => {
  test('When the form is empty, Then nothing is set', () => {
    assert.deepEqual(readSteering({ system: ' ', temperature: '', maxTokens: '' }), {
      steering: {}
    });
  });

  test('When values are typed, Then they go as system and options', () => {
    assert.deepEqual(readSteering({ system: 'Be brief.', temperature: '0.2', maxTokens: '64' }), {
      steering: { system: 'Be brief.', options: { temperature: 0.2, max_tokens: 64 } }
    });
  });

  test('When a value is out of range or not a number, Then one line says which and nothing is sent', () => {
    for (const [form, field] of [
      [{ system: '', temperature: '5', maxTokens: '' }, 'Temperature'],
      [{ system: '', temperature: 'x', maxTokens: '' }, 'Temperature'],
      [{ system: '', temperature: '', maxTokens: '0' }, 'Max tokens'],
      [{ system: '', temperature: '', maxTokens: '1.5' }, 'Max tokens']
    ] as const) {
      const read = readSteering(form);
      assert.ok('error' in read, JSON.stringify(form));
      assert.ok(read.error.startsWith(field), read.error);
      assert.ok(!read.error.includes('\n'));
    }
  });

  test('When a turn recorded its params, Then the form shows them', () => {
    assert.deepEqual(formOf({ system: 'S', temperature: 0.5, max_tokens: 9, seed: 1 }), {
      system: 'S',
      temperature: '0.5',
      maxTokens: '9'
    });
    assert.deepEqual(formOf(undefined), { system: '', temperature: '', maxTokens: '' });
  });
});

describe('costText and totalText', () => {
  test('When a cost is shown, Then three significant digits, at least cents, as the widgets show it', () => {
    assert.equal(costText(0.04), '$0.0400');
    assert.equal(costText(0.28000000000000003), '$0.280');
    assert.equal(costText(12.345), '$12.35');
    assert.equal(costText(1.5), '$1.50');
    assert.equal(costText(0.000123), '$0.000123');
    assert.equal(costText(0.0000054), '$0.00000540');
    assert.equal(costText(0), '$0');
    assert.equal(costText(null), '');
  });

  test('When a conversation is summed, Then tokens always show and the cost only when priced', () => {
    assert.equal(totalText(2, 10, 1234, null, 0), '2 replies · 10 tokens in, 1,234 out');
    assert.equal(totalText(1, 10, 20, 0.05, 1), '1 reply · 10 tokens in, 20 out · $0.0500');
    assert.equal(
      totalText(3, 10, 20, 0.05, 2),
      '3 replies · 10 tokens in, 20 out · $0.0500 (2 of 3 priced)'
    );
  });
});

const TURN: IExportTurn = {
  model: 'demo:fast',
  prompt: 'Hi',
  reply: 'Hello **there**',
  stats: 'completed · 3 tokens · $0.0400'
};

describe('exports', () => {
  test('When a turn is inserted as a cell, Then it is a section as history().to_markdown() writes it', () => {
    assert.equal(
      turnMarkdown(TURN),
      '**You**\n\nHi\n\n**demo:fast** (completed · 3 tokens · $0.0400)\n\nHello **there**'
    );
  });

  test('When the server names the exported file, Then the download takes that name', () => {
    assert.equal(
      attachmentName('attachment; filename="my-nb-Sales-Q3.md"', 'x.md'),
      'my-nb-Sales-Q3.md'
    );
    assert.equal(attachmentName(null, 'export.json'), 'export.json');
  });
});

describe('replayNote', () => {
  test('When a replay sent the same messages to the same model, Then it says so', () => {
    const same = {
      response_model: 'm-1',
      system_fingerprint: 'fp',
      messages_sha256: 'ab'.repeat(32)
    };
    assert.equal(
      replayNote(same, same),
      `Replay: same messages (sha256 ${'ab'.repeat(6)}… matches); response model unchanged (m-1); fingerprint unchanged (fp)`
    );
  });

  test('When the model or fingerprint changed, Then it says from what to what', () => {
    const note = replayNote(
      { response_model: 'm-1', system_fingerprint: null, messages_sha256: 'a'.repeat(64) },
      { response_model: 'm-2', system_fingerprint: 'fp', messages_sha256: 'b'.repeat(64) }
    );
    assert.ok(note.includes('different messages'), note);
    assert.ok(note.includes('response model changed: m-1 → m-2'), note);
    assert.ok(note.includes('fingerprint changed: none → fp'), note);
  });
});

describe('withActive', () => {
  const v1 = {
    version: 1,
    conversations: {
      c1: {
        turns: [
          { run: 'a', created: '1' },
          { run: 'b', created: '2' }
        ],
        x: 1
      }
    }
  };

  test('When an alternative is chosen, Then the section says it is active, upgraded, losing nothing', () => {
    const section = withActive(v1, 'c1', 'a')!;
    assert.equal(section.version, 2);
    const read = readConversation(section, 'c1');
    assert.equal(read.active, 'a');
    assert.deepEqual(
      read.turns.map(t => [t.run, t.parent]),
      [
        ['a', null],
        ['b', 'a']
      ]
    );
    assert.equal(
      (v1.conversations.c1 as { [k: string]: unknown }).active,
      undefined,
      'not modified'
    );
  });

  test('When it is active already or no such turn, Then nothing changes', () => {
    assert.equal(withActive(v1, 'c1', 'b'), null);
    assert.equal(withActive(v1, 'c1', 'zz'), null);
  });

  test('When the section is of a newer version, Then it is never written', () => {
    assert.throws(
      () => withActive({ version: 3, conversations: {} }, 'c1', 'a'),
      UnreadableSectionError
    );
  });
});

describe('paramsText', () => {
  test('When a reply was asked with parameters, Then one line names them and who answered', () => {
    assert.equal(
      paramsText(
        { temperature: 0.3, max_tokens: 64, seed: 7, system: 'Be brief.' },
        'gpt-4o-2024-08-06',
        'openai:gpt-4o'
      ),
      'temperature 0.3 · max tokens 64 · seed 7 · system prompt · answered by gpt-4o-2024-08-06'
    );
    assert.equal(paramsText({}, 'gpt-4o', 'openai:gpt-4o'), '', 'the model asked for answered');
    assert.equal(paramsText({}, null, 'demo:fast'), '');
  });
});
