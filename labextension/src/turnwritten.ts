/**
 * The turn schema of the open-document hand-off: what the server says on
 * `GET streamchat/documents/events` when it wrote a run's turn into a notebook file (SPEC section 6,
 * README "Where conversations are stored"), checked before anything takes it.
 */

import { ITurn } from './metadata';
import { isObject } from './util';
import { IFileVersion } from './versions';

/** Data of an `event: turn` on the document stream: a turn the server wrote into the file. */
export interface ITurnWritten {
  path: string;
  conversation: string;
  turn: ITurn;
  /** The file's version before and after the write (null when the server could not tell). */
  before: IFileVersion | null;
  after: IFileVersion | null;
}

function isVersion(value: unknown): value is IFileVersion | null {
  return value === null || isObject(value);
}

/** Validate the data of a `turn` event; null if it is not usable. */
export function parseTurnWritten(data: string): ITurnWritten | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (
    !isObject(value) ||
    typeof value.path !== 'string' ||
    typeof value.conversation !== 'string' ||
    !isObject(value.turn) ||
    typeof value.turn.run !== 'string' ||
    !isVersion(value.before ?? null) ||
    !isVersion(value.after ?? null)
  ) {
    return null;
  }
  return {
    path: value.path,
    conversation: value.conversation,
    turn: value.turn as ITurn,
    before: (value.before ?? null) as IFileVersion | null,
    after: (value.after ?? null) as IFileVersion | null
  };
}
