/**
 * The notebook's `metadata.streamchat` section (SPEC section 6) as data: reading it and merging a
 * turn into it (mirrors `jupyter_streamchat.persistence._schema.merged_streamchat`).
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
export const SCHEMA_VERSION = 1;

/** One turn as recorded in the notebook (SPEC section 6); only `run` and `created` are read here. */
export interface ITurn extends JSONObject {
  run: string;
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
 * The new `metadata.streamchat` with `turn` added to `conversation` (turns sorted by `created`),
 * or null if the run is already recorded: applying a turn twice changes nothing. Neither argument
 * is modified; the result's objects have a null prototype.
 */
export function mergeTurn(section: unknown, conversation: string, turn: ITurn): JSONObject | null {
  if (hasTurn(section, turn.run)) {
    return null;
  }
  const merged = (isObject(section) ? copyJSON(section) : copyJSON({})) as JSONObject;
  merged.version = SCHEMA_VERSION;
  let conversations = ownObject(merged, 'conversations') as JSONObject | null;
  if (conversations === null) {
    conversations = copyJSON({}) as JSONObject;
    merged.conversations = conversations;
  }
  let entry = ownObject(conversations, conversation) as JSONObject | null;
  if (entry === null) {
    entry = copyJSON({}) as JSONObject;
    conversations[conversation] = entry;
  }
  const recorded = own(entry, 'turns');
  const turns: JSONValue[] = Array.isArray(recorded) ? (recorded as JSONValue[]) : [];
  turns.push(copyJSON(turn));
  const created = (t: JSONValue): string => {
    const value = own(t, 'created');
    return typeof value === 'string' ? value : '';
  };
  // Array.prototype.sort is stable, like Python's sort: equal keys keep their order.
  turns.sort((a, b) => {
    const ka = created(a);
    const kb = created(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  entry.turns = turns;
  return merged;
}
