/**
 * "Is this run recorded in its notebook?" as the server answers it (SPEC section 6): a reply says
 * "Saved in <notebook>" only once the server confirms that the notebook holds the turn, and says so
 * when the notebook was deleted. A request the server refused started nothing: no note at all.
 *
 * The server's run record carries `recorded` ("pending" | "recorded" | "gone") for runs that name a
 * notebook, and `notebook` is the notebook's current path (it follows renames);
 * `GET runs/{id}?wait=recorded` answers once the run ended and `recorded` is no longer "pending" (or
 * after ~30 s, still pending: then ask again).
 */

import { requestAPI } from './api';
import { IRunRecord, RecordedState } from './run';

/** Least time between two questions when the server answers "pending" at once (ms). */
const MIN_ASK_INTERVAL = 1000;

/** What a reply shows about its record. */
export interface IRecordNote {
  state: RecordedState;
  /** The notebook's current path. */
  notebook: string;
}

/**
 * Follow run `runId`'s record until the server says it is recorded or gone; `onNote` gets each
 * state the server reports (pending first, while it waits). Resolves with the final note, or null
 * when the server keeps no such record for the run (no notebook, or a server that does not say).
 */
export async function followRecord(
  runId: string,
  onNote: (note: IRecordNote) => void,
  signal: AbortSignal
): Promise<IRecordNote | null> {
  const endpoint = `runs/${encodeURIComponent(runId)}?wait=recorded`;
  for (;;) {
    const asked = Date.now();
    const record = await requestAPI<IRunRecord>(endpoint, { signal, cache: 'no-store' });
    const note = noteOf(record);
    if (note === null || signal.aborted) {
      return note;
    }
    onNote(note);
    if (note.state !== 'pending') {
      return note;
    }
    const wait = MIN_ASK_INTERVAL - (Date.now() - asked);
    if (wait > 0) {
      await new Promise(resolve => setTimeout(resolve, wait));
    }
  }
}

/** The note a run record carries, or null (a run without a notebook has no `recorded`). */
export function noteOf(record: IRunRecord): IRecordNote | null {
  const state = record.recorded;
  if (
    (state !== 'pending' && state !== 'recorded' && state !== 'gone') ||
    typeof record.notebook !== 'string'
  ) {
    return null;
  }
  return { state, notebook: record.notebook };
}

/** The line a reply shows for a note. */
export function noteText(note: IRecordNote): string {
  switch (note.state) {
    case 'recorded':
      return `Saved in ${note.notebook}`;
    case 'gone':
      return `Not saved: the notebook ${note.notebook} was deleted`;
    default:
      return `Saving in ${note.notebook}…`;
  }
}
