/**
 * The notebook's `metadata.streamchat` merge (src/metadata.ts): conversation ids are data, whatever
 * their name, and nothing read from a notebook reaches Object.prototype.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';

import {
  copyJSON,
  hasTurn,
  ITurn,
  mergeTurn,
  own,
  SCHEMA_VERSION,
  UnreadableSectionError
} from '../src/metadata';
import { isObject } from '../src/util';

/** Names that a plain object answers from its prototype, and the one that replaces the prototype. */
const PROTOTYPE_NAMES = ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__'];

function turn(run: string, created: string): ITurn {
  return {
    run,
    model: 'demo:fast',
    mode: 'detached',
    prompt: { role: 'user', content: `prompt of ${run}` },
    reply: { role: 'assistant', content: `reply of ${run}`, status: 'completed' },
    created
  };
}

/** A `metadata.streamchat` section as a notebook file holds it, parsed as the page parses JSON. */
function sectionFromJSON(conversations: { [id: string]: ITurn[] }): unknown {
  const parts = Object.entries(conversations).map(
    ([id, turns]) => `${JSON.stringify(id)}: ${JSON.stringify({ turns })}`
  );
  return JSON.parse(`{"version": 1, "conversations": {${parts.join(', ')}}}`);
}

/** Run id -> conversation ids that hold it, from own keys only (as the file would be written). */
function turnsByRun(section: unknown): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const conversations = JSON.parse(JSON.stringify(own(section, 'conversations')));
  for (const id of Object.keys(conversations)) {
    for (const t of conversations[id].turns) {
      found.set(t.run, [...(found.get(t.run) ?? []), id]);
    }
  }
  return found;
}

let prototypeBefore: string[] = [];

beforeEach(() => {
  prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();
});

afterEach(() => {
  // Then nothing was added to (or replaced in) Object.prototype
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeBefore);
  assert.equal(({} as { turns?: unknown }).turns, undefined);
  assert.equal(typeof Object.prototype.toString, 'function');
  assert.equal(typeof Object.prototype.hasOwnProperty, 'function');
});

describe('mergeTurn', () => {
  for (const name of PROTOTYPE_NAMES) {
    test(`a new turn in a conversation named ${name} is recorded in that conversation`, () => {
      // Given a notebook whose metadata has no such conversation yet
      const section = sectionFromJSON({ other: [turn('r0', '2024-01-01T00:00:00Z')] });
      // When a turn of conversation `name` is merged
      const merged = mergeTurn(section, name, turn('r1', '2024-01-02T00:00:00Z'));
      // Then it is in that conversation, once, and the other conversation is kept
      assert.notEqual(merged, null);
      const byRun = turnsByRun(merged);
      assert.deepEqual(byRun.get('r1'), [name]);
      assert.deepEqual(byRun.get('r0'), ['other']);
      assert.equal(own(merged, 'version'), SCHEMA_VERSION);
      // And JSON (what the file gets) holds it as an own key
      const written = JSON.parse(JSON.stringify(merged));
      assert.ok(Object.prototype.hasOwnProperty.call(written.conversations, name));
    });

    test(`a notebook that already has a conversation named ${name} (read from JSON) gets the next turn in it`, () => {
      // Given a notebook file with a conversation `name` of one turn
      const section = sectionFromJSON({
        [name]: [turn('r1', '2024-01-01T00:00:00Z')],
        other: [turn('r2', '2024-01-01T00:00:01Z')]
      });
      assert.equal(hasTurn(section, 'r1'), true);
      // When its second turn is merged
      const merged = mergeTurn(section, name, turn('r3', '2024-01-03T00:00:00Z'));
      // Then the conversation holds both, in order, and nothing else moved
      assert.notEqual(merged, null);
      const conversation = own(own(merged, 'conversations'), name);
      const runs = (own(conversation, 'turns') as ITurn[]).map(t => t.run);
      assert.deepEqual(runs, ['r1', 'r3']);
      assert.deepEqual(turnsByRun(merged).get('r2'), ['other']);
      // And merging the same run again changes nothing
      assert.equal(mergeTurn(merged, name, turn('r3', '2024-01-03T00:00:00Z')), null);
      // And the input was not modified
      assert.deepEqual(turnsByRun(section).get('r3'), undefined);
    });
  }

  test('a run recorded in any conversation is not merged again', () => {
    const section = sectionFromJSON({ a: [turn('r1', '2024-01-01T00:00:00Z')] });
    assert.equal(mergeTurn(section, 'b', turn('r1', '2024-01-01T00:00:00Z')), null);
  });

  test('a new turn goes after the last turn created no later than it; the others keep their order', () => {
    const section = sectionFromJSON({
      c: [turn('late', '2024-01-03T00:00:00Z'), turn('same1', '2024-01-02T00:00:00Z')]
    });
    const merged = mergeTurn(section, 'c', turn('first', '2024-01-01T00:00:00Z'));
    const merged2 = mergeTurn(merged, 'c', turn('same2', '2024-01-02T00:00:00Z'));
    const runs = (own(own(own(merged2, 'conversations'), 'c'), 'turns') as ITurn[]).map(t => t.run);
    assert.deepEqual(runs, ['first', 'late', 'same1', 'same2']);
    assert.equal(own(own(own(merged2, 'conversations'), 'c'), 'active'), 'same2');
  });

  test('a missing or null section starts a new one', () => {
    for (const section of [undefined, null]) {
      const merged = mergeTurn(section, 'c', turn('r1', '2024-01-01T00:00:00Z'));
      assert.deepEqual(turnsByRun(merged).get('r1'), ['c']);
      assert.equal(own(merged, 'version'), SCHEMA_VERSION);
    }
  });

  test('a malformed or future section is never written: mergeTurn throws, saying why', () => {
    for (const section of [
      'text',
      [],
      { version: 1, conversations: [] },
      { version: 1, conversations: 3 },
      { conversations: {} },
      { version: 3, conversations: {} }
    ]) {
      assert.throws(
        () => mergeTurn(section, 'c', turn('r1', '2024-01-01T00:00:00Z')),
        (error: unknown) => error instanceof UnreadableSectionError && error.reason.length > 0
      );
    }
  });

  test('inherited values are not conversations: an object whose prototype holds one is read as empty', () => {
    // What JSONExt.deepCopy makes of a `__proto__` key: the conversation becomes the prototype
    const conversations = Object.create({ inherited: { turns: [turn('r1', '2024')] } });
    const section = { version: 1, conversations };
    assert.equal(hasTurn(section, 'r1'), false);
    const merged = mergeTurn(section, 'inherited', turn('r2', '2024'));
    assert.deepEqual(turnsByRun(merged).get('r2'), ['inherited']);
  });
});

describe('copyJSON, own, isObject', () => {
  test('copyJSON keeps a __proto__ key as data and shares nothing with its input', () => {
    const value = JSON.parse('{"__proto__": {"x": [1, {"y": 2}]}, "a": null}');
    const copy = copyJSON(value) as { [key: string]: unknown };
    assert.equal(Object.getPrototypeOf(copy), null);
    assert.deepEqual(JSON.parse(JSON.stringify(copy)), JSON.parse(JSON.stringify(value)));
    assert.notEqual(own(copy, '__proto__'), own(value, '__proto__'));
  });

  test('own reads own properties only', () => {
    assert.equal(own({}, 'constructor'), undefined);
    assert.equal(own({}, 'toString'), undefined);
    assert.equal(own({}, '__proto__'), undefined);
    assert.equal(own({ constructor: 1 }, 'constructor'), 1);
    assert.equal(own([1], '0'), undefined);
    assert.equal(own(null, 'a'), undefined);
  });

  test('isObject: objects only', () => {
    assert.equal(isObject({}), true);
    assert.equal(isObject(Object.create(null)), true);
    for (const value of [null, undefined, [], 'a', 1, () => 0]) {
      assert.equal(isObject(value), false);
    }
  });
});
