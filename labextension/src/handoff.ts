/**
 * Open-document hand-off (browser side).
 *
 * When a run that names a notebook ends, the server offers its turn to the documents that have
 * that notebook open (README, "Where conversations are stored"). For every notebook open in
 * JupyterLab -- whether or not the StreamChat panel is shown -- this module keeps one
 * subscription to `GET {baseUrl}streamchat/documents/events?path=<path>` (SSE). On a `turn`
 * event it claims the offer (`POST streamchat/documents/claim`) and, only if the claim is
 * accepted, merges the turn into the open document's `metadata.streamchat`. A document without
 * unsaved changes is saved right away; a dirty one keeps the turn until the user's next save.
 * The server then never writes the file under an open document, so JupyterLab never shows
 * "File Changed" and no unsaved edit is lost.
 *
 * Streams hold HTTP connections, of which a browser has only 6 per host (HTTP/1.1): at most
 * `HandoffLimits.streams` notebooks per page, the most recently active ones, and at most
 * `STREAM_SLOTS` for all tabs together (slots.ts) are subscribed; the others are "parked" and the
 * server writes their files as if they were not open.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { JSONExt, JSONObject, JSONValue, PartialJSONObject } from '@lumino/coreutils';

import { requestAPI } from './api';
import { tryAcquireStreamSlot } from './slots';
import { SSEParser } from './sse';

const PLUGIN_ID = 'jupyter-streamchat:handoff';

/** Top-level notebook metadata key of the records (SPEC section 6). */
export const METADATA_KEY = 'streamchat';

/** Version of the `metadata.streamchat` schema written by this extension. */
export const SCHEMA_VERSION = 1;

/**
 * State of a notebook's hand-off, mirrored in `data-streamchat-handoff` on its panels.
 *
 * - `connecting`: subscribing (first time or after a path change);
 * - `ready`: subscribed, the server will offer this document the turns of its path;
 * - `retrying`: the stream ended or failed, waiting before reconnecting;
 * - `parked`: not subscribed because too many streams are open: more notebooks are open in this
 *   page than `HandoffLimits.streams` (the most recently active ones are subscribed), or all
 *   stream slots of the origin are taken (see slots.ts). The server writes a parked document's
 *   file, as if it was not open;
 * - `off`: not subscribed (document not on the server's drive, read-only, or not loaded).
 */
export type HandoffState = 'connecting' | 'ready' | 'retrying' | 'parked' | 'off';

/** One turn as recorded in the notebook (SPEC section 6); only `run` and `created` are read here. */
export interface ITurn extends JSONObject {
  run: string;
}

/** Data of an `event: turn` on the document stream. */
export interface ITurnOffer {
  offer: string;
  path: string;
  conversation: string;
  turn: ITurn;
}

/** Body of `POST streamchat/documents/claim`. */
interface IClaimReply {
  offer?: string;
  accepted?: boolean;
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
  /**
   * A stream that received nothing (not even a `: ping`, sent every 15 s by default) for this
   * long is treated as dead (half-open TCP connection) and reconnected.
   */
  idleTimeout: 75_000
};

/**
 * Document streams per page: only the most recently active notebooks are subscribed. Each
 * subscription is a long-lived HTTP request, and also needs one of the origin's stream slots
 * (slots.ts): browsers allow only 6 HTTP/1.1 connections per host for all tabs together, and
 * JupyterLab hangs when streams hold them all.
 */
export const HandoffLimits = {
  streams: 3
};

// ---------------------------------------------------------------------------------------------
// Metadata merge (mirrors jupyter_streamchat.persistence._schema.merged_streamchat)

function isObject(value: unknown): value is JSONObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether `section` (a `metadata.streamchat` value) already records run `runId`, in any conversation. */
export function hasTurn(section: unknown, runId: string): boolean {
  if (!isObject(section) || !isObject(section.conversations)) {
    return false;
  }
  for (const conversation of Object.values(section.conversations)) {
    const turns = isObject(conversation) ? conversation.turns : undefined;
    if (Array.isArray(turns) && turns.some(t => isObject(t) && t.run === runId)) {
      return true;
    }
  }
  return false;
}

/**
 * The new `metadata.streamchat` with `turn` added to `conversation` (turns sorted by `created`),
 * or null if the run is already recorded: applying a turn twice changes nothing.
 */
export function mergeTurn(section: unknown, conversation: string, turn: ITurn): JSONObject | null {
  if (hasTurn(section, turn.run)) {
    return null;
  }
  const merged: JSONObject = isObject(section) ? JSONExt.deepCopy(section) : {};
  merged.version = SCHEMA_VERSION;
  if (!isObject(merged.conversations)) {
    merged.conversations = {};
  }
  const conversations = merged.conversations as JSONObject;
  if (!isObject(conversations[conversation])) {
    conversations[conversation] = {};
  }
  const entry = conversations[conversation] as JSONObject;
  const turns: JSONValue[] = Array.isArray(entry.turns) ? entry.turns : [];
  turns.push(JSONExt.deepCopy(turn));
  const created = (t: JSONValue): string =>
    isObject(t) && typeof t.created === 'string' ? t.created : '';
  // Array.prototype.sort is stable, like Python's sort: equal keys keep their order.
  turns.sort((a, b) => {
    const ka = created(a);
    const kb = created(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  entry.turns = turns;
  return merged;
}

/** Validate the data of a `turn` event; null if it is not a usable offer. */
export function parseOffer(data: string): ITurnOffer | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (
    !isObject(value) ||
    typeof value.offer !== 'string' ||
    typeof value.path !== 'string' ||
    typeof value.conversation !== 'string' ||
    !isObject(value.turn) ||
    typeof value.turn.run !== 'string'
  ) {
    return null;
  }
  return value as unknown as ITurnOffer;
}

// ---------------------------------------------------------------------------------------------
// One open document

type NotebookContext = DocumentRegistry.IContext<INotebookModel>;

/** Thrown to end a stream attempt whose server answer will not change soon. */
class RefusedError extends Error {}

/**
 * The hand-off of one open notebook (one document context, shared by all its views):
 * one SSE subscription for the context's current path, for as long as the context lives.
 */
export class DocumentHandoff {
  constructor(
    readonly context: NotebookContext,
    private readonly _contents: Contents.IManager,
    private readonly _settings: ServerConnection.ISettings
  ) {
    context.pathChanged.connect(this._onPathChanged, this);
    context.saveState.connect(this._onSaveState, this);
    context.disposed.connect(this.dispose, this);
    context.model.contentChanged.connect(this._onContentChanged, this);
    context.ready
      .then(() => this._run())
      .catch(error => {
        this._setState('off');
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

  /** Whether this document may hold a stream (see `HandoffLimits`); connects or parks at once. */
  setEnabled(enabled: boolean): void {
    if (enabled === this._enabled) {
      return;
    }
    this._enabled = enabled;
    this._restart = true;
    this._abort?.abort();
    this._wake();
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
    this._abort?.abort();
    this._wake();
    this._setState('off');
    this._panels.clear();
  }

  /**
   * The server-relative path to subscribe to, or null if this document does not live on the
   * server's own contents (another drive) or cannot be written (a save would fail).
   */
  private _serverPath(): string | null {
    const context = this.context;
    if (this._contents.driveName(context.path) !== '') {
      return null;
    }
    if (context.contentsModel?.writable === false) {
      return null;
    }
    return context.localPath;
  }

  /** Subscribe, and resubscribe (with backoff) until the document is closed. */
  private async _run(): Promise<void> {
    let failures = 0;
    while (!this._disposed) {
      if (!this._enabled) {
        this._setState('parked');
        await this._sleep(null); // until enabled again (or disposed)
        failures = 0;
        continue;
      }
      const path = this._serverPath();
      if (path === null) {
        this._setState('off');
        await this._sleep(null); // until the path changes (e.g. renamed onto the server drive)
        continue;
      }
      const releaseSlot = await tryAcquireStreamSlot();
      if (releaseSlot === null) {
        this._setState('parked');
        await this._sleep(HandoffTimings.slotRetry * (0.8 + 0.4 * Math.random()));
        continue;
      }
      if (this._disposed || !this._enabled || this._serverPath() !== path) {
        releaseSlot();
        continue;
      }
      this._setState(failures === 0 ? 'connecting' : 'retrying');
      this._restart = false;
      const abort = new AbortController();
      this._abort = abort;
      let delay: number;
      try {
        await this._stream(path, abort, () => {
          failures = 0;
          this._setState('ready', path);
        });
        delay = HandoffTimings.retryInitial; // the server ended the stream (e.g. restart)
      } catch (error) {
        if (error instanceof RefusedError) {
          delay = HandoffTimings.retryRefused;
          console.warn(`StreamChat: no open-document hand-off for ${path}: ${error.message}`);
        } else {
          delay = Math.min(HandoffTimings.retryMax, HandoffTimings.retryInitial * 2 ** failures);
          if (!abort.signal.aborted) {
            console.debug(`StreamChat: document stream for ${path} failed`, error);
          }
        }
      } finally {
        releaseSlot();
        if (this._abort === abort) {
          this._abort = null;
        }
      }
      if (this._disposed) {
        break;
      }
      if (abort.signal.aborted && this._restart) {
        this._restart = false; // path changed or parked: act on it now
        continue;
      }
      failures += 1;
      this._setState('retrying');
      await this._sleep(delay * (0.8 + 0.4 * Math.random()));
    }
  }

  /** One subscription: resolves when the server ends the stream, rejects on failure. */
  private async _stream(path: string, abort: AbortController, onReady: () => void): Promise<void> {
    const url =
      URLExt.join(this._settings.baseUrl, 'streamchat', 'documents', 'events') +
      URLExt.objectToQueryString({ path } as PartialJSONObject);
    const response = await ServerConnection.makeRequest(
      url,
      {
        method: 'GET',
        headers: { Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: abort.signal
      },
      this._settings
    );
    if (!response.ok) {
      void response.body?.cancel().catch(() => undefined);
      const reason = `${response.status} ${response.statusText}`.trim();
      if ([400, 403, 404].includes(response.status)) {
        throw new RefusedError(reason);
      }
      throw new Error(reason);
    }
    if (response.body === null) {
      throw new Error('the document stream has no body');
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SSEParser();
    let idle = 0;
    const watchdog = (): void => {
      window.clearTimeout(idle);
      idle = window.setTimeout(() => abort.abort(), HandoffTimings.idleTimeout);
    };
    watchdog();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          return;
        }
        watchdog();
        for (const message of parser.push(decoder.decode(value, { stream: true }))) {
          if (message.event === 'ready') {
            onReady();
          } else if (message.event === 'turn') {
            const offer = parseOffer(message.data);
            if (offer === null) {
              console.warn('StreamChat: ignoring a malformed turn offer', message.data);
            } else {
              void this._onOffer(offer, path);
            }
          }
        }
      }
    } finally {
      window.clearTimeout(idle);
      void reader.cancel().catch(() => undefined);
    }
  }

  /**
   * Claim an offer at once (the server waits `handoff_timeout`, 2 s by default), then apply the
   * turn, but only if the claim was accepted: otherwise the server writes the file itself.
   */
  private async _onOffer(offer: ITurnOffer, path: string): Promise<void> {
    // Never claim for a document that is gone or now lives elsewhere: the file must get it.
    if (this._disposed || offer.path !== path || this._serverPath() !== path) {
      return;
    }
    let reply: IClaimReply | undefined;
    try {
      reply = await requestAPI<IClaimReply>(
        'documents/claim',
        { method: 'POST', body: JSON.stringify({ offer: offer.offer }) },
        this._settings
      );
    } catch (error) {
      // Not claimed (as far as we know): the server writes the file after its timeout.
      console.warn(`StreamChat: could not claim turn ${offer.turn.run} for ${path}`, error);
      return;
    }
    if (reply?.accepted !== true) {
      return;
    }
    if (this._disposed) {
      // Closed between the claim and its answer (milliseconds): nothing can hold the turn now.
      console.error(
        `StreamChat: ${path} was closed before turn ${offer.turn.run} could be applied`
      );
      return;
    }
    this._apply(offer);
  }

  /** Merge an accepted turn into the open document; save it if it had no unsaved changes. */
  private _apply(offer: ITurnOffer): void {
    const model = this.context.model;
    // Unsaved changes that are only turns we added (e.g. while our own save was in flight) do
    // not count: the document had nothing of the user's to keep out of the file.
    const wasDirty = model.dirty && !this._onlyOurs;
    const merged = mergeTurn(model.getMetadata(METADATA_KEY), offer.conversation, offer.turn);
    if (merged === null) {
      return; // already recorded
    }
    this._applying = true;
    try {
      model.setMetadata(METADATA_KEY, merged);
    } finally {
      this._applying = false;
    }
    if (!wasDirty) {
      this._onlyOurs = true;
    }
    if (this._saving) {
      // A save in flight serialized the model before this change, and marks the model clean
      // when it ends: mark it dirty again then (see _onSaveState), or the turn would look saved.
      this._redirty = true;
    }
    if (!wasDirty) {
      this._saveWanted = true;
      void this._autoSave();
    }
    // A dirty document keeps the turn until the user's next save (which writes both).
  }

  /**
   * Save the document because a turn was added to it while it had no unsaved changes. Skipped
   * if the file changed on disk since it was loaded or saved (JupyterLab would ask "File
   * Changed" -- it must never do that because of us); it then stays dirty with the turn.
   */
  private async _autoSave(): Promise<void> {
    if (this._disposed || this._saving || this._ourSave || !this._saveWanted) {
      return; // re-run when the save in flight ends
    }
    this._saveWanted = false;
    this._ourSave = true;
    try {
      if (!this.context.model.dirty) {
        return; // someone else saved it already
      }
      if (await this._changedOnDisk()) {
        console.warn(
          `StreamChat: ${this.context.path} changed on disk; the new turn stays unsaved in the open document`
        );
        return;
      }
      if (this._saving) {
        this._saveWanted = true; // a save started meanwhile: check again when it ends
      } else if (!this._disposed && this.context.model.dirty) {
        await this.context.save();
      }
    } catch (error) {
      console.warn(`StreamChat: could not save ${this.context.path}`, error);
    } finally {
      this._ourSave = false;
    }
    if (this._saveWanted) {
      void this._autoSave();
    }
  }

  /** The same test JupyterLab's save makes before it asks "File Changed" (hash, else time). */
  private async _changedOnDisk(): Promise<boolean> {
    const known = this.context.contentsModel;
    if (known === null) {
      return false;
    }
    const disk = await this._contents.get(this.context.path, { content: false, hash: true });
    if (
      known.hash !== undefined &&
      known.hash !== null &&
      disk.hash !== undefined &&
      disk.hash !== null
    ) {
      return known.hash !== disk.hash;
    }
    if (!known.last_modified || !disk.last_modified) {
      return false;
    }
    return new Date(disk.last_modified).getTime() > new Date(known.last_modified).getTime();
  }

  private _onSaveState(_: NotebookContext, state: DocumentRegistry.SaveState): void {
    if (state === 'started') {
      this._saving = true;
      return;
    }
    this._saving = false;
    if (this._redirty && !this._disposed) {
      this._redirty = false;
      this.context.model.dirty = true;
    } else if (state === 'completed') {
      this._onlyOurs = false;
    }
    void this._autoSave();
  }

  private _onContentChanged(): void {
    if (!this._applying) {
      this._onlyOurs = false; // the user (or anything but us) changed the document
    }
  }

  private _onPathChanged(): void {
    this._restart = true;
    this._abort?.abort();
    this._wake();
  }

  /** Wait `ms` milliseconds (forever if null), or until the path changes or we are disposed. */
  private _sleep(ms: number | null): Promise<void> {
    return new Promise<void>(resolve => {
      const timer = ms === null ? 0 : window.setTimeout(() => this._wake(), ms);
      this._wake = () => {
        this._wake = () => undefined;
        window.clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Record the state, and on the panels: `data-streamchat-handoff` and, when ready, the subscribed path. */
  private _setState(state: HandoffState, path: string | null = null): void {
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
  private _enabled = true;
  private _disposed = false;
  private _abort: AbortController | null = null;
  private _restart = false;
  private _wake: () => void = () => undefined;
  private _panels = new Set<NotebookPanel>();
  private _saving = false;
  private _redirty = false;
  private _saveWanted = false;
  private _ourSave = false;
  private _applying = false;
  private _onlyOurs = false;
}

// ---------------------------------------------------------------------------------------------
// Plugin

/**
 * The hand-offs of all open notebooks, one per document context. At most `HandoffLimits.streams`
 * of them hold a stream: the most recently active ones.
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
  }

  /** Start (or keep) the hand-off of a panel's document and make it the most recently active. */
  track(panel: NotebookPanel): void {
    const context = panel.context;
    let handoff = this._handoffs.find(h => h.context === context);
    if (handoff === undefined) {
      handoff = new DocumentHandoff(context, this._contents, this._settings);
      const created = handoff;
      context.disposed.connect(() => {
        this._handoffs = this._handoffs.filter(h => h !== created);
        this._balance();
      });
    } else {
      this._handoffs = this._handoffs.filter(h => h !== handoff);
    }
    this._handoffs.unshift(handoff);
    handoff.addPanel(panel);
    this._balance();
  }

  private _balance(): void {
    this._handoffs.forEach((handoff, index) => handoff.setEnabled(index < HandoffLimits.streams));
  }

  /** Most recently active first. */
  private _handoffs: DocumentHandoff[] = [];
}

export const handoffPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Open-document hand-off: finished StreamChat turns land in the open notebook, not in the file under it.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    new HandoffManager(tracker, app.serviceManager.contents, ServerConnection.makeSettings());
  }
};
