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
 * A stream holds an HTTP connection, of which a browser has only 6 per host (HTTP/1.1) for all its
 * tabs: so one stream per page, whatever the number of notebooks, holding one of the origin's
 * `STREAM_SLOTS` (slots.ts). When the set of open notebooks changes (open, close, rename), the page
 * opens a stream for the new set and closes the old one once the new one is ready, so no turn
 * finds the page without a subscriber meanwhile. If no slot is free, the documents are "parked":
 * the file still gets every turn, and the page learns of it when it next loads the notebook.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Contents, ServerConnection } from '@jupyterlab/services';

import { fetchAPI } from './api';
import { hasTurn, isObject, ITurn, METADATA_KEY, mergeTurn } from './metadata';
import { ReleaseSlot, tryAcquireStreamSlot } from './slots';
import { readSSE } from './sse';
import { IFileVersion, sameVersion } from './versions';

const PLUGIN_ID = 'jupyter-streamchat:handoff';

/**
 * State of a notebook's hand-off, mirrored in `data-streamchat-handoff` on its panels (and, when
 * `ready`, the subscribed path in `data-streamchat-handoff-path`).
 *
 * - `connecting`: the page's stream is being (re)opened to include this document (first time,
 *   or after the set of open notebooks changed, e.g. this one was opened or renamed);
 * - `ready`: the page's stream includes this document's path: the server tells it its turns;
 * - `retrying`: the stream ended or failed (or the server refused this path), waiting before
 *   reconnecting;
 * - `parked`: not subscribed because no stream slot of the origin is free (all taken by this and
 *   other tabs, see slots.ts), or more than `MAX_STREAM_PATHS` notebooks are open in this page
 *   (the most recently active ones are subscribed). A parked document is not told of turns (the
 *   file still gets them);
 * - `off`: not subscribed (document not on the server's drive, read-only, or not loaded).
 */
export type HandoffState = 'connecting' | 'ready' | 'retrying' | 'parked' | 'off';

/** Data of an `event: turn` on the document stream: a turn the server wrote into the file. */
export interface ITurnWritten {
  path: string;
  conversation: string;
  turn: ITurn;
  /** The file's version before and after the write (null when the server could not tell). */
  before: IFileVersion | null;
  after: IFileVersion | null;
}

/** Timing knobs (milliseconds); exported for tests and for tuning. */
export const HandoffTimings = {
  /** First reconnect delay; doubled per failed attempt. */
  retryInitial: 500,
  /** Longest reconnect delay for transient failures. */
  retryMax: 30_000,
  /** Delay after an answer that will not change soon (400/403/404: bad path, persistence off). */
  retryRefused: 300_000,
  /** Delay before trying again for a stream slot when all are taken (by this or other tabs). */
  slotRetry: 3_000,
  /** Coalesce changes of the set of open notebooks (several opened at once) into one resubscription. */
  debounce: 150,
  /**
   * A stream that received nothing (not even a `: ping`, sent every 15 s by default) for this
   * long is treated as dead (half-open TCP connection) and reconnected.
   */
  idleTimeout: 75_000
};

/**
 * Paths one stream may name (the server's limit, `MAX_DOCUMENT_PATHS` in handlers.py): beyond it,
 * the least recently active notebooks of the page are parked.
 */
export const MAX_STREAM_PATHS = 64;

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

// ---------------------------------------------------------------------------------------------
// One open document

type NotebookContext = DocumentRegistry.IContext<INotebookModel>;

/**
 * The hand-off of one open notebook (one document context, shared by all its views): it takes the
 * turns that the page's stream (`HandoffManager`) is told for the context's current path, for as
 * long as the context lives.
 */
export class DocumentHandoff {
  /**
   * @param _onChange - called when the path to subscribe to may have changed (document loaded,
   *   renamed); the manager then resubscribes the page's stream
   */
  constructor(
    readonly context: NotebookContext,
    private readonly _contents: Contents.IManager,
    private readonly _onChange: () => void
  ) {
    context.pathChanged.connect(this._onPathChanged, this);
    context.saveState.connect(this._onSaveState, this);
    context.disposed.connect(this.dispose, this);
    context.model.contentChanged.connect(this._onContentChanged, this);
    context.ready
      .then(() => this._onChange())
      .catch(error => {
        this._failed = true;
        this.setState('off');
        console.warn(`StreamChat: no open-document hand-off for ${context.path}`, error);
      });
  }

  /** Current state (also in `data-streamchat-handoff` on the document's panels). */
  get state(): HandoffState {
    return this._state;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Show the state on a view of this document, now and on every change. */
  addPanel(panel: NotebookPanel): void {
    if (this._panels.has(panel)) {
      return;
    }
    this._panels.add(panel);
    this._showState(panel);
    panel.disposed.connect(() => this._panels.delete(panel));
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.context.pathChanged.disconnect(this._onPathChanged, this);
    this.context.saveState.disconnect(this._onSaveState, this);
    this.context.disposed.disconnect(this.dispose, this);
    this.context.model.contentChanged.disconnect(this._onContentChanged, this);
    this.setState('off');
    this._panels.clear();
  }

  /**
   * The server-relative path to subscribe to, or null if this document is not loaded (or closed),
   * does not live on the server's own contents (another drive) or cannot be written (a save
   * would fail).
   */
  serverPath(): string | null {
    const context = this.context;
    if (this._disposed || this._failed || !context.isReady) {
      return null;
    }
    if (this._contents.driveName(context.path) !== '') {
      return null;
    }
    if (context.contentsModel?.writable === false) {
      return null;
    }
    return context.localPath;
  }

  /**
   * Take a turn the server wrote into this document's file. `path` is the path the page's stream
   * subscribed for this document. While a save is in flight, wait for it: the version the page
   * knows is the one that save writes.
   */
  take(written: ITurnWritten, path: string): void {
    // Never for a document that is gone or now lives elsewhere (the file has the turn anyway).
    if (this._disposed || written.path !== path || this.serverPath() !== path) {
      return;
    }
    this._pending.push(written);
    if (!this._saving) {
      void this._takePending();
    }
  }

  private async _takePending(): Promise<void> {
    if (this._taking) {
      return; // the running loop takes what was added meanwhile
    }
    this._taking = true;
    try {
      while (this._pending.length > 0 && !this._saving && !this._disposed) {
        await this._takeOne(this._pending.shift()!);
      }
    } finally {
      this._taking = false;
    }
  }

  private async _takeOne(written: ITurnWritten): Promise<void> {
    const context = this.context;
    const model = context.model;
    // Unsaved changes that are only turns we merged do not count: nothing of the user's is at stake.
    const clean = !model.dirty || this._onlyOurs;
    const knowsBefore = sameVersion(context.contentsModel, written.before);
    const knowsAfter = sameVersion(context.contentsModel, written.after);
    if (hasTurn(model.getMetadata(METADATA_KEY), written.turn.run)) {
      // Told again (a new stream is told the turns written lately): nothing to take, nothing to reload.
      if (knowsBefore && written.after !== null) {
        adoptVersion(context, written.after);
      }
      return;
    }
    if (written.after !== null && (knowsBefore || knowsAfter)) {
      // Only our turn changed the file since this page last loaded or saved it (or the page already
      // knows the file with it): hold the turn too, and know the new version, so the next save
      // neither asks "File Changed" nor drops it.
      this._merge(written);
      if (knowsBefore) {
        adoptVersion(context, written.after);
      }
      if (clean) {
        model.dirty = false;
        this._onlyOurs = false;
      }
      return;
    }
    if (clean) {
      // The file also changed in other ways (another page saved it): with nothing unsaved here,
      // load it -- it holds the turn and everything else.
      try {
        await context.revert();
        this._onlyOurs = false;
        return;
      } catch (error) {
        console.warn(`StreamChat: could not reload ${context.path}`, error);
      }
    }
    // Unsaved edits here and a file changed by someone else: keep the edits and the turn; the
    // user's next save is JupyterLab's to reconcile, as for any file changed on disk.
    if (this._merge(written) && clean) {
      this._onlyOurs = true;
    }
  }

  /** Merge a turn into the open document; false if it was there already. */
  private _merge(written: ITurnWritten): boolean {
    const model = this.context.model;
    const merged = mergeTurn(model.getMetadata(METADATA_KEY), written.conversation, written.turn);
    if (merged === null) {
      return false;
    }
    this._applying = true;
    try {
      model.setMetadata(METADATA_KEY, merged);
    } finally {
      this._applying = false;
    }
    return true;
  }

  private _onSaveState(_: NotebookContext, state: DocumentRegistry.SaveState): void {
    if (state === 'started') {
      this._saving = true;
      return;
    }
    this._saving = false;
    if (state === 'completed') {
      this._onlyOurs = false;
    }
    void this._takePending();
  }

  private _onContentChanged(): void {
    if (!this._applying) {
      this._onlyOurs = false; // the user (or anything but us) changed the document
    }
  }

  private _onPathChanged(): void {
    this._onChange();
  }

  /** Record the state, and on the panels: `data-streamchat-handoff` and, when ready, the subscribed path. */
  setState(state: HandoffState, path: string | null = null): void {
    if (state === this._state && path === this._subscribedPath) {
      return;
    }
    this._state = state;
    this._subscribedPath = path;
    for (const panel of this._panels) {
      this._showState(panel);
    }
  }

  private _showState(panel: NotebookPanel): void {
    panel.node.dataset.streamchatHandoff = this._state;
    if (this._subscribedPath === null) {
      delete panel.node.dataset.streamchatHandoffPath;
    } else {
      panel.node.dataset.streamchatHandoffPath = this._subscribedPath;
    }
  }

  private _state: HandoffState = 'off';
  private _subscribedPath: string | null = null;
  private _disposed = false;
  private _failed = false;
  private _panels = new Set<NotebookPanel>();
  private _saving = false;
  private _taking = false;
  private _pending: ITurnWritten[] = [];
  private _applying = false;
  private _onlyOurs = false;
}

/**
 * Make `version` the file version the document context knows (what its next save compares with
 * the file on disk). JupyterLab has no public setter: this is the context's own update after a
 * save, which also tells its listeners the file changed.
 */
function adoptVersion(context: NotebookContext, version: IFileVersion): void {
  const known = context.contentsModel;
  const update = (context as unknown as { _updateContentsModel?: (model: Contents.IModel) => void })
    ._updateContentsModel;
  if (known === null || typeof update !== 'function') {
    console.warn(`StreamChat: cannot update the known version of ${context.path}`);
    return;
  }
  update.call(context, {
    ...known,
    hash: version.hash ?? undefined,
    hash_algorithm: version.hash_algorithm ?? undefined,
    last_modified: version.last_modified ?? known.last_modified
  } as Contents.IModel);
}

// ---------------------------------------------------------------------------------------------
// The page's stream

/** How a stream ended (see `DocumentStream.done`). */
type StreamEnd =
  /** The server ended it (e.g. a restart), or the page aborted it. */
  | { kind: 'ended' }
  | { kind: 'failed'; error: unknown }
  /**
   * 400/403/404: asking again will not help soon (persistence off, a path outside the server's
   * root). `path` is the one path the server refused, if it names one.
   */
  | { kind: 'refused'; reason: string; path: string | null };

/**
 * One `GET streamchat/documents/events?path=…` stream for a set of paths. It holds a stream slot
 * (slots.ts) until it ends, and never throws: `done` says how it ended.
 */
class DocumentStream {
  constructor(
    readonly paths: ReadonlySet<string>,
    settings: ServerConnection.ISettings,
    release: ReleaseSlot,
    onTurn: (written: ITurnWritten) => void
  ) {
    let opened: () => void = () => undefined;
    const ready = new Promise<void>(resolve => (opened = resolve));
    this.done = this._read(
      settings,
      () => {
        this._ready = true;
        opened();
      },
      onTurn
    ).then(end => {
      release();
      this._ended = true;
      return end;
    });
    this.settled = Promise.race([ready, this.done]);
  }

  /** Settles when the stream ended (after its slot was released). */
  readonly done: Promise<StreamEnd>;

  /** Settles when the server's `ready` arrived, or the stream ended before. */
  readonly settled: Promise<unknown>;

  /** Whether the server's `ready` arrived: from then on it tells this stream the turns of `paths`. */
  get ready(): boolean {
    return this._ready;
  }

  get ended(): boolean {
    return this._ended;
  }

  abort(): void {
    this._abort.abort();
  }

  private async _read(
    settings: ServerConnection.ISettings,
    onReady: () => void,
    onTurn: (written: ITurnWritten) => void
  ): Promise<StreamEnd> {
    const query = new URLSearchParams([...this.paths].map(path => ['path', path]));
    try {
      const response = await fetchAPI(
        `documents/events?${query}`,
        {
          method: 'GET',
          headers: { Accept: 'text/event-stream' },
          cache: 'no-store',
          signal: this._abort.signal
        },
        settings
      );
      if (!response.ok) {
        const reason = `${response.status} ${response.statusText}`.trim();
        if ([400, 403, 404].includes(response.status)) {
          const body: unknown = await response.json().catch(() => null);
          return {
            kind: 'refused',
            reason: isObject(body) && typeof body.message === 'string' ? body.message : reason,
            path: isObject(body) && typeof body.path === 'string' ? body.path : null
          };
        }
        void response.body?.cancel().catch(() => undefined);
        return { kind: 'failed', error: new Error(reason) };
      }
      await readSSE(
        response,
        message => {
          if (message.event === 'ready') {
            onReady();
          } else if (message.event === 'turn') {
            const written = parseTurnWritten(message.data);
            if (written === null) {
              console.warn('StreamChat: ignoring a malformed turn event', message.data);
            } else {
              onTurn(written);
            }
          }
          return true;
        },
        HandoffTimings.idleTimeout
      );
      return { kind: 'ended' };
    } catch (error) {
      return this._abort.signal.aborted ? { kind: 'ended' } : { kind: 'failed', error };
    }
  }

  private _abort = new AbortController();
  private _ready = false;
  private _ended = false;
}

function samePaths(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every(path => b.has(path));
}

/** `ms` give or take 20 %, so that tabs that failed together do not retry together. */
function jitter(ms: number): number {
  return ms * (0.8 + 0.4 * Math.random());
}

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
        await this._wait();
        continue;
      }
      if (live !== null && samePaths(live.paths, wanted)) {
        this._showStates();
        await this._wait(); // until the set changes, or the stream ends (see _onStreamEnd)
        if (this._live === null) {
          // The server ended it (e.g. a restart) or the connection broke: reconnect after a pause.
          failures = 1;
          this._phase = 'retrying';
          this._showStates();
          await this._wait(null, jitter(HandoffTimings.retryInitial));
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
        await this._wait(null, jitter(HandoffTimings.slotRetry));
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
        await this._wait(stream.settled);
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
      await this._wait(null, jitter(delay));
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
      this._wake();
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
    this._debounce = window.setTimeout(() => this._wake(), HandoffTimings.debounce);
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

  /**
   * Wait until `promise` settles, `ms` pass, or `_wake()` is called -- also if it was called while
   * nobody waited, so that no change is missed between two waits.
   */
  private _wait(promise: Promise<unknown> | null = null, ms: number | null = null): Promise<void> {
    if (this._woken) {
      this._woken = false;
      return Promise.resolve();
    }
    return new Promise<void>(resolve => {
      const timer = ms === null ? 0 : window.setTimeout(() => done(), ms);
      const done = (): void => {
        if (this._resume === done) {
          this._resume = null;
          window.clearTimeout(timer);
          resolve();
        }
      };
      this._resume = done;
      promise?.then(done, done);
    });
  }

  private _wake(): void {
    if (this._resume !== null) {
      this._resume();
    } else {
      this._woken = true;
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
  private _resume: (() => void) | null = null;
  private _woken = false;
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
