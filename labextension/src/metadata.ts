/**
 * The notebook's `metadata.streamchat` section (SPEC sections 6 and 11) as data: whether it may be
 * written, reading a conversation's tree, and merging a turn into it (mirrors the server's
 * `persistence/_section.py` and `persistence/_schema.py` `merged_streamchat`, word for word where
 * they give reasons: tests/parity/metadata holds both to the same fixtures).
 *
 * Version 2 turns form a tree: each turn has a `parent` (the run id it follows, null for a first
 * turn) and each conversation an `active` leaf. Version 1 reads as one branch in turn order: a turn
 * without `parent` follows the turn before it, a conversation without `active` has its last turn
 * active; merging into it upgrades it to version 2, losing and reordering nothing. A section that
 * cannot be read safely (a newer version, or malformed) is never written: `mergeTurn` throws
 * `UnreadableSectionError`, and the page leaves its document alone (the server's write of the file
 * is the record).
 *
 * Conversation ids, run ids and paths are user data, and JSON read from a notebook can hold any key,
 * `__proto__` and `constructor` included. So every object keyed by such data is read with own-property
 * checks and built with a null prototype: a plain `{}` indexed with `__proto__` hands out
 * `Object.prototype`, and writing into that pollutes every object of the page.
 *
 * Pure (no DOM, no JupyterLab at runtime): unit tested in node (labextension/test/metadata.test.ts).
 */

import type { JSONObject, JSONValue } from '@lumino/coreutils';

import { Dict, isObject } from './util';

// Re-exported for the modules that read metadata through this one (defined once, in util.ts).
export type { Dict };

/** Top-level notebook metadata key of the records (SPEC section 6). */
export const METADATA_KEY = 'streamchat';

/** Version of the `metadata.streamchat` schema written by this extension. */
export const SCHEMA_VERSION = 2;

/** The versions of `metadata.streamchat` this extension reads (and upgrades to SCHEMA_VERSION). */
export const READABLE_VERSIONS: readonly number[] = [1, 2];

/**
 * One turn as recorded in the notebook (SPEC sections 6 and 11); only `run`, `parent` and
 * `created` are read here.
 */
export interface ITurn extends JSONObject {
  run: string;
}

/** A `metadata.streamchat` section that may not be written; `reason` says why, in one line. */
export class UnreadableSectionError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'UnreadableSectionError';
  }
}

/** What a JSON value is, in words (the same words as the server's `_kind`). */
export function kindOf(value: unknown): string {
  if (value === null || value === undefined) {
    return 'null';
  }
  if (typeof value === 'boolean') {
    return 'a boolean';
  }
  if (typeof value === 'number') {
    return 'a number';
  }
  if (typeof value === 'string') {
    return 'a string';
  }
  if (Array.isArray(value)) {
    return 'a list';
  }
  return 'an object';
}

/**
 * Why `section` (a `metadata.streamchat` value) must not be written, or null when it may be
 * (no section at all, or null, is none). Readable: an object whose `version` is 1 or 2, whose
 * `conversations` is an object of objects whose `turns` are lists of objects with a string `run`,
 * and whose `parent` and `active` (when there) are run ids or null.
 */
export function sectionProblem(section: unknown): string | null {
  if (section === null || section === undefined) {
    return null;
  }
  const where = 'metadata.streamchat';
  if (!isObject(section)) {
    return `${where} is ${kindOf(section)}, not an object`;
  }
  const raw = own(section, 'version');
  const version = typeof raw === 'number' && Number.isInteger(raw) ? raw : null;
  if (version !== null && version > SCHEMA_VERSION) {
    return (
      `${where} has version ${version}, newer than this jupyter_streamchat understands ` +
      `(${SCHEMA_VERSION}); update jupyter_streamchat to record here`
    );
  }
  if (version === null || !READABLE_VERSIONS.includes(version)) {
    const shown = raw === undefined ? 'none' : JSON.stringify(raw);
    return `${where} has version ${shown}, not one this jupyter_streamchat reads (1 or 2)`;
  }
  const conversations = own(section, 'conversations');
  if (conversations === undefined) {
    return null;
  }
  if (!isObject(conversations)) {
    return `${where}.conversations is ${kindOf(conversations)}, not an object`;
  }
  for (const name of Object.keys(conversations)) {
    const problem = conversationProblem(
      `${where}.conversations[${JSON.stringify(name)}]`,
      conversations[name]
    );
    if (problem !== null) {
      return problem;
    }
  }
  return null;
}

function conversationProblem(where: string, entry: unknown): string | null {
  if (!isObject(entry)) {
    return `${where} is ${kindOf(entry)}, not an object`;
  }
  const turns = own(entry, 'turns');
  if (turns !== undefined && !Array.isArray(turns)) {
    return `${where}.turns is ${kindOf(turns)}, not a list`;
  }
  const active = own(entry, 'active');
  if (active !== undefined && active !== null && typeof active !== 'string') {
    return `${where}.active is ${kindOf(active)}, not a run id`;
  }
  const list: unknown[] = Array.isArray(turns) ? turns : [];
  for (let index = 0; index < list.length; index++) {
    const turn = list[index];
    if (!isObject(turn) || typeof own(turn, 'run') !== 'string') {
      return `${where}.turns[${index}] is not a turn (an object with a run id)`;
    }
    const parent = own(turn, 'parent');
    if (parent !== undefined && parent !== null && typeof parent !== 'string') {
      return `${where}.turns[${index}].parent is ${kindOf(parent)}, not a run id`;
    }
  }
  return null;
}

/** `object[key]` if `object` has it as its own property, else undefined (never an inherited value). */
export function own(object: unknown, key: string): unknown {
  return isObject(object) && Object.prototype.hasOwnProperty.call(object, key)
    ? object[key]
    : undefined;
}

/** The own object at `object[key]`, or null. */
function ownObject(object: unknown, key: string): Dict | null {
  const value = own(object, key);
  return isObject(value) ? value : null;
}

/**
 * A deep copy of a JSON value whose objects have a null prototype: any key, `__proto__` included,
 * is an ordinary own property of the copy. (JSONExt.deepCopy assigns into `{}`, where a
 * `__proto__` key replaces the copy's prototype instead.) Only own enumerable keys are copied.
 */
export function copyJSON(value: unknown): JSONValue {
  if (Array.isArray(value)) {
    return value.map(copyJSON);
  }
  if (isObject(value)) {
    const copy = Object.create(null) as JSONObject;
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (item !== undefined) {
        copy[key] = copyJSON(item);
      }
    }
    return copy;
  }
  return value as JSONValue;
}

/** The conversations object of a `metadata.streamchat` value, or null. */
export function conversationsOf(section: unknown): Dict | null {
  return ownObject(section, 'conversations');
}

/** Whether `section` (a `metadata.streamchat` value) already records run `runId`, in any conversation. */
export function hasTurn(section: unknown, runId: string): boolean {
  const conversations = conversationsOf(section);
  if (conversations === null) {
    return false;
  }
  for (const id of Object.keys(conversations)) {
    const turns = own(conversations[id], 'turns');
    if (Array.isArray(turns) && turns.some(t => own(t, 'run') === runId)) {
      return true;
    }
  }
  return false;
}

/**
 * A copy of a readable section (null/undefined: a new one) at SCHEMA_VERSION with its reading rule
 * written down: every turn gets its `parent` (the turn before it), every conversation with turns its
 * `active` (its last turn). Nothing is removed or reordered; unknown keys are kept. The copy's
 * objects have a null prototype.
 */
export function upgraded(section: unknown): JSONObject {
  const result = (isObject(section) ? copyJSON(section) : copyJSON({})) as JSONObject;
  result.version = SCHEMA_VERSION;
  let conversations = ownObject(result, 'conversations') as JSONObject | null;
  if (conversations === null) {
    conversations = copyJSON({}) as JSONObject;
    result.conversations = conversations;
  }
  for (const name of Object.keys(conversations)) {
    const entry = conversations[name] as JSONObject;
    const turns = own(entry, 'turns');
    if (!Array.isArray(turns) || turns.length === 0) {
      continue;
    }
    let previous: string | null = null;
    for (const turn of turns as JSONObject[]) {
      if (own(turn, 'parent') === undefined) {
        turn.parent = previous;
      }
      previous = turn.run as string;
    }
    const active = own(entry, 'active');
    if (active === undefined || active === null) {
      entry.active = previous;
    }
  }
  return result;
}

/** One conversation as read: its turns in file order with `parent` filled in, and its active leaf. */
export interface IConversation {
  turns: JSONObject[];
  active: string | null;
}

/**
 * The conversation's tree as the reading rule gives it (see `upgraded`); throws
 * `UnreadableSectionError` for a section that may not be written (it cannot be trusted either).
 */
export function readConversation(section: unknown, conversation: string): IConversation {
  const problem = sectionProblem(section);
  if (problem !== null) {
    throw new UnreadableSectionError(problem);
  }
  const entry = own(conversationsOf(section), conversation);
  if (entry === undefined) {
    return { turns: [], active: null };
  }
  const single = copyJSON({ version: SCHEMA_VERSION }) as JSONObject;
  const conversations = copyJSON({}) as JSONObject;
  conversations[conversation] = entry as JSONValue;
  single.conversations = conversations;
  const read = own(own(upgraded(single), 'conversations'), conversation);
  const turns = own(read, 'turns');
  const active = own(read, 'active');
  return {
    turns: Array.isArray(turns) ? (turns as JSONObject[]) : [],
    active: typeof active === 'string' ? active : null
  };
}

/**
 * The turns from the root of the tree down to `leaf` (null: none). A `parent` that names no turn of
 * `turns` ends the walk: that turn is then the first of its branch.
 */
export function branch(turns: readonly JSONObject[], leaf: string | null): JSONObject[] {
  const byRun = new Map<string, JSONObject>();
  for (const turn of turns) {
    byRun.set(turn.run as string, turn);
  }
  const path: JSONObject[] = [];
  const seen = new Set<string>();
  let current = leaf;
  while (current !== null && byRun.has(current) && !seen.has(current)) {
    seen.add(current);
    const turn = byRun.get(current)!;
    path.push(turn);
    const parent = own(turn, 'parent');
    current = typeof parent === 'string' ? parent : null;
  }
  return path.reverse();
}

/**
 * The new `metadata.streamchat` with `turn` added to `conversation` as its active leaf, or null if
 * the run is already recorded (in any conversation): applying a turn twice changes nothing. The
 * result is at SCHEMA_VERSION (a version-1 section is upgraded); the turn goes after the last turn
 * created no later than it, the others keep their order. A section that may not be written throws
 * `UnreadableSectionError`. Neither argument is modified; the result's objects have a null prototype.
 */
export function mergeTurn(section: unknown, conversation: string, turn: ITurn): JSONObject | null {
  if (hasTurn(section, turn.run)) {
    return null;
  }
  const problem = sectionProblem(section);
  if (problem !== null) {
    throw new UnreadableSectionError(problem);
  }
  const merged = upgraded(section);
  const conversations = ownObject(merged, 'conversations') as JSONObject;
  let entry = ownObject(conversations, conversation) as JSONObject | null;
  if (entry === null) {
    entry = copyJSON({}) as JSONObject;
    conversations[conversation] = entry;
  }
  const recorded = own(entry, 'turns');
  const turns: JSONValue[] = Array.isArray(recorded) ? (recorded as JSONValue[]) : [];
  const created = (t: unknown): string => {
    const value = own(t, 'created');
    return typeof value === 'string' ? value : '';
  };
  const key = created(turn);
  let at = 0;
  for (let index = turns.length - 1; index >= 0; index--) {
    if (created(turns[index]) <= key) {
      at = index + 1;
      break;
    }
  }
  turns.splice(at, 0, copyJSON(turn));
  entry.turns = turns;
  entry.active = turn.run;
  return merged;
}

/**
 * The new `metadata.streamchat` with `run` as `conversation`'s active leaf (the panel's "Previous /
 * Next alternative"), or null when it is already, or when the conversation records no such turn.
 * The result is at SCHEMA_VERSION (a version-1 section is upgraded, losing nothing); a section that
 * may not be written throws `UnreadableSectionError`. `section` is not modified.
 */
export function withActive(section: unknown, conversation: string, run: string): JSONObject | null {
  const { turns, active } = readConversation(section, conversation);
  if (active === run || !turns.some(turn => turn.run === run)) {
    return null;
  }
  const result = upgraded(section);
  const entry = ownObject(ownObject(result, 'conversations'), conversation) as JSONObject;
  entry.active = run;
  return result;
}
