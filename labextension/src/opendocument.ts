/**
 * One open notebook's side of the hand-off (the page's stream is documentstream.ts, the manager
 * that follows the open notebooks handoff.ts): it takes the turns the server wrote into the file
 * into the open document's `metadata.streamchat` (idempotent by run id), so that whichever page
 * saves keeps them, and takes the file version the server wrote as the one it knows when it knew
 * the version before the write: its next save then neither asks "File Changed" nor drops the turn,
 * and a document without unsaved changes stays clean. A clean document whose file was also changed
 * by someone else reloads it (it has nothing to lose); a document with unsaved edits keeps them,
 * with the turn. While a save is in flight, turns wait for it.
 */

import type { DocumentRegistry } from '@jupyterlab/docregistry';
import type { INotebookModel } from '@jupyterlab/notebook';
import type { Contents } from '@jupyterlab/services';
import type { ISignal } from '@lumino/signaling';

import { hasTurn, METADATA_KEY, mergeTurn, sectionProblem } from './metadata';
import { ITurnWritten } from './turnwritten';
import { IFileVersion, sameVersion } from './versions';

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

/** A view of a document that shows its hand-off state (a notebook panel). */
export interface IHandoffView {
  readonly node: HTMLElement;
  readonly disposed: ISignal<unknown, void>;
}

/** Where the hand-off asks which drive a path is on (the page's contents manager). */
export type DriveOf = Pick<Contents.IManager, 'driveName'>;

/** The document context of an open notebook (shared by all its views). */
export type NotebookContext = DocumentRegistry.IContext<INotebookModel>;

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
    private readonly _contents: DriveOf,
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
  addPanel(panel: IHandoffView): void {
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
    const problem = sectionProblem(model.getMetadata(METADATA_KEY));
    if (problem !== null) {
      // This copy holds a section this version may not write (a newer version, or malformed): leave
      // the document alone. The file holds the turn (the server wrote it there); this page's next
      // save is JupyterLab's to reconcile, as for any file changed on disk.
      console.warn(
        `StreamChat: run ${written.turn.run} not taken into ${context.path}: ${problem} (the file has it)`
      );
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

  private _showState(panel: IHandoffView): void {
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
  private _panels = new Set<IHandoffView>();
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
