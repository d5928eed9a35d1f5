/**
 * Open-document hand-off (browser side).
 *
 * When a run that names a notebook ends, the server writes its turn into the notebook FILE at once
 * (so a reload, "Discard" or a browser crash loses nothing) and tells every page that has the
 * notebook open (README, "Where conversations are stored"). For all notebooks open in this page --
 * whether or not the StreamChat panel is shown -- this module keeps ONE subscription:
 * `GET {baseUrl}streamchat/documents/events?path=<a>&path=<b>...` (SSE). On a `turn` event it
 * merges the turn into that open document's `metadata.streamchat` (idempotent by run id), so that
 * whichever page saves keeps it, and takes the file version the server wrote as the one it knows
 * when it knew the version before the write: its next save then neither asks "File Changed" nor
 * drops the turn, and a document without unsaved changes stays clean. A clean document whose file
 * was also changed by someone else reloads it (it has nothing to lose); a document with unsaved
 * edits keeps them, with the turn.
 *
 * The rooms: turnwritten.ts (the `turn` event's schema), opendocument.ts (one open notebook takes a
 * turn: merge, adopt the version, reload or keep the edits), documentstream.ts (one stream), and
 * this module (the manager of the page's open notebooks and its one stream, and the plugin).
 *
 * A stream holds an HTTP connection, of which a browser has only 6 per host (HTTP/1.1) for all its
 * tabs: so one stream per page, whatever the number of notebooks, holding one of the origin's
 * `STREAM_SLOTS` (slots.ts). When the set of open notebooks changes (open, close, rename), the page
 * opens a stream for the new set and closes the old one once the new one is ready, so no turn
 * finds the page without a subscriber meanwhile. If no slot is free, the documents are "parked":
 * the file still gets every turn, and the page learns of it when it next loads the notebook.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Contents, ServerConnection } from '@jupyterlab/services';

import {
  DocumentStream,
  HandoffTimings,
  jitter,
  MAX_STREAM_PATHS,
  samePaths
} from './documentstream';
import { DocumentHandoff } from './opendocument';
import { tryAcquireStreamSlot } from './slots';
import { ITurnWritten } from './turnwritten';
import { Wakeup } from './wakeup';

const PLUGIN_ID = 'jupyter-streamchat:handoff';

/**
 * The hand-offs of all open notebooks of the page (one per document context) and the page's one
 * stream for all their paths (at most `MAX_STREAM_PATHS`, the most recently active ones).
 *
 * The stream follows the set of paths: when it changes (a notebook opened, closed or renamed),
 * a stream for the new set is opened, and the old one is closed only once the new one is ready,
 * so that a turn always finds a subscriber. That takes a second slot for a moment; if none is
 * free, the old stream is closed first.
 */
export class HandoffManager {
  constructor(
    tracker: INotebookTracker,
    private readonly _contents: Contents.IManager,
    private readonly _settings: ServerConnection.ISettings
  ) {
    tracker.widgetAdded.connect((_, panel) => this.track(panel));
    tracker.currentChanged.connect((_, panel) => {
      if (panel !== null) {
        this.track(panel);
      }
    });
    tracker.forEach(panel => this.track(panel));
    if (tracker.currentWidget !== null) {
      this.track(tracker.currentWidget);
    }
    void this._run();
  }

  /** Start (or keep) the hand-off of a panel's document and make it the most recently active. */
  track(panel: NotebookPanel): void {
    const context = panel.context;
    let handoff = this._handoffs.find(h => h.context === context);
    if (handoff === undefined) {
      handoff = new DocumentHandoff(context, this._contents, () => this._changed());
      const created = handoff;
      context.disposed.connect(() => {
        this._handoffs = this._handoffs.filter(h => h !== created);
        this._changed();
      });
    } else {
      this._handoffs = this._handoffs.filter(h => h !== handoff);
    }
    this._handoffs.unshift(handoff);
    handoff.addPanel(panel);
    this._changed();
  }

  /** The paths the page's stream should name now: most recently active documents first. */
  private _wantedPaths(): Set<string> {
    const paths = new Set<string>();
    for (const handoff of this._handoffs) {
      const path = handoff.serverPath();
      if (path !== null && !this._refused.has(path) && paths.size < MAX_STREAM_PATHS) {
        paths.add(path);
      }
    }
    return paths;
  }

  /** Keep one stream open for the wanted paths, for the life of the page. */
  private async _run(): Promise<void> {
    let failures = 0;
    for (;;) {
      const wanted = this._wantedPaths();
      const live = this._live;
      if (wanted.size === 0) {
        // No notebook to subscribe for: hold no connection.
        this._live = null;
        live?.abort();
        failures = 0;
        this._phase = 'connecting';
        this._showStates();
        await this._wakeup.wait();
        continue;
      }
      if (live !== null && samePaths(live.paths, wanted)) {
        this._showStates();
        await this._wakeup.wait(); // until the set changes, or the stream ends (see _onStreamEnd)
        if (this._live === null) {
          // The server ended it (e.g. a restart) or the connection broke: reconnect after a pause.
          failures = 1;
          this._phase = 'retrying';
          this._showStates();
          await this._wakeup.wait(null, jitter(HandoffTimings.retryInitial));
        }
        continue;
      }

      // A stream for `wanted` is needed. It takes a slot of its own: the live stream keeps serving
      // its paths until the new one is ready.
      let release = await tryAcquireStreamSlot();
      if (release === null && this._live !== null) {
        // No second slot: close, then open. Turns in between are not told to this page (the
        // files have them), but this page still gets its stream.
        const old = this._live;
        this._live = null;
        old.abort();
        this._showStates();
        await old.done;
        release = await tryAcquireStreamSlot();
      }
      if (release === null) {
        this._phase = 'parked';
        this._showStates();
        await this._wakeup.wait(null, jitter(HandoffTimings.slotRetry));
        continue;
      }
      if (!samePaths(wanted, this._wantedPaths())) {
        release(); // the set changed while we waited for the slot
        continue;
      }
      this._phase = failures === 0 ? 'connecting' : 'retrying';
      this._showStates();
      const stream: DocumentStream = new DocumentStream(wanted, this._settings, release, written =>
        this._dispatch(stream, written)
      );
      while (!stream.ready && !stream.ended && samePaths(wanted, this._wantedPaths())) {
        await this._wakeup.wait(stream.settled);
      }
      if (stream.ready) {
        // The server now tells the new stream the turns of all wanted paths: the old one can go.
        const old = this._live;
        this._live = stream;
        old?.abort();
        void stream.done.then(() => this._onStreamEnd(stream));
        failures = 0;
        this._phase = 'connecting';
        continue;
      }
      if (!stream.ended) {
        // The set changed while it connected: start over with the new set.
        stream.abort();
        await stream.done;
        continue;
      }
      const end = await stream.done;
      if (end.kind === 'refused' && end.path !== null && wanted.has(end.path)) {
        // One path the server will not serve (e.g. a symlink out of its root): leave it out for a
        // while, and subscribe the others at once.
        this._refuse(end.path, end.reason);
        continue;
      }
      let delay: number;
      if (end.kind === 'refused') {
        console.warn(
          `StreamChat: no open-document hand-off for ${[...wanted].join(', ')}: ${end.reason}`
        );
        delay = HandoffTimings.retryRefused;
      } else {
        if (end.kind === 'failed') {
          console.debug('StreamChat: the document stream failed', end.error);
        }
        delay = Math.min(HandoffTimings.retryMax, HandoffTimings.retryInitial * 2 ** failures);
      }
      failures += 1;
      this._phase = 'retrying';
      this._showStates();
      await this._wakeup.wait(null, jitter(delay));
    }
  }

  /** Hand a written turn to the open documents of its path. */
  private _dispatch(stream: DocumentStream, written: ITurnWritten): void {
    if (!stream.paths.has(written.path)) {
      return; // not a path this stream subscribed to
    }
    for (const handoff of this._handoffs) {
      if (handoff.serverPath() === written.path) {
        handoff.take(written, written.path);
      }
    }
  }

  private _onStreamEnd(stream: DocumentStream): void {
    if (this._live === stream) {
      // Ended without being replaced: the server ended it, or the connection broke.
      this._live = null;
      this._phase = 'retrying';
      this._showStates();
      this._wakeup.wake();
    }
  }

  /** Leave `path` out of the stream for `retryRefused` (then try it again). */
  private _refuse(path: string, reason: string): void {
    console.warn(`StreamChat: no open-document hand-off for ${path}: ${reason}`);
    this._refused.add(path);
    window.setTimeout(() => {
      this._refused.delete(path);
      this._changed();
    }, jitter(HandoffTimings.retryRefused));
  }

  /** The documents or a path changed: show it now, and resubscribe once changes pause. */
  private _changed(): void {
    this._showStates();
    window.clearTimeout(this._debounce);
    this._debounce = window.setTimeout(() => this._wakeup.wake(), HandoffTimings.debounce);
  }

  /** Mirror on every document whether the live stream serves it, or why not. */
  private _showStates(): void {
    const served = this._live?.paths;
    const wanted = this._wantedPaths();
    for (const handoff of this._handoffs) {
      const path = handoff.serverPath();
      if (path === null) {
        handoff.setState('off');
      } else if (served?.has(path)) {
        handoff.setState('ready', path);
      } else if (this._refused.has(path)) {
        handoff.setState('retrying');
      } else if (!wanted.has(path)) {
        handoff.setState('parked'); // beyond MAX_STREAM_PATHS
      } else {
        handoff.setState(this._phase);
      }
    }
  }

  /** Most recently active first. */
  private _handoffs: DocumentHandoff[] = [];
  /** The stream that serves the page (its `ready` arrived), if any. */
  private _live: DocumentStream | null = null;
  /** What documents not (yet) served by the live stream are waiting for. */
  private _phase: 'connecting' | 'retrying' | 'parked' = 'connecting';
  /** Paths the server refused: left out of the stream for a while. */
  private _refused = new Set<string>();
  private _debounce = 0;
  private _wakeup = new Wakeup();
}

export const handoffPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Open-document hand-off: open notebooks take the StreamChat turns the server writes into their files.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    new HandoffManager(tracker, app.serviceManager.contents, ServerConnection.makeSettings());
  }
};
