/**
 * The chat of one notebook: its recorded conversations (from `metadata.streamchat`) and its live
 * runs (detached), one element per run whatever its source -- this panel, a reload, or a cell
 * (`%%chat`, `chat()`) of the same notebook: one run, two views.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { UUID } from '@lumino/coreutils';

import { fetchAPI, requestAPI } from './api';
import { IConversation, recordedConversations, serverPath } from './notebook';
import { element } from './dom';
import { IReplyContext, ReplyView, STREAM_BATCH } from './reply';
import { IRunRecord } from './run';
import { followRun, StreamRefusedError } from './sse';
import { sentContextNodes, sentItems, ISentItem } from './sentcontext';
import { withStreamSlot } from './slots';
import { IWireItem } from './tokens';
import { firstLine, messageOf, oneLine } from './util';

interface IEntry {
  conversation: string;
  created: string;
  prompt: string;
  reply: ReplyView;
  node: HTMLElement;
  /** The notebook the run is recorded in (server-relative), or null. */
  notebook: string | null;
  /** Set while this page follows the run's events. */
  abort: AbortController | null;
  stopWanted: boolean;
}

export class NotebookChat {
  /** The thread of the shown conversation (a scrolling log). */
  readonly node: HTMLElement;

  constructor(
    private readonly _context: IReplyContext,
    readonly notebook: NotebookPanel | null
  ) {
    this.node = element('div', 'jp-StreamChat-thread');
    this.node.setAttribute('role', 'log');
    this.node.setAttribute('aria-label', 'Chat history');
    this.node.tabIndex = 0;
    this.node.addEventListener('scroll', () => {
      const node = this.node;
      this._stickToBottom = node.scrollHeight - node.scrollTop - node.clientHeight < 40;
    });
    notebook?.context.model.metadataChanged.connect(this.refresh, this);
    void notebook?.context.ready.then(() => this.refresh());
    this._conversation = UUID.uuid4();
    this.refresh();
  }

  /** Called whenever what the panel shows around the thread may have changed. */
  onChange: (() => void) | null = null;

  get path(): string | null {
    return serverPath(this.notebook);
  }

  get conversation(): string {
    return this._conversation;
  }

  /** Conversations to offer: recorded ones, live ones and the current one, most recent first. */
  conversations(): { id: string; label: string }[] {
    const recorded = this.notebook ? recordedConversations(this.notebook) : [];
    const byId = new Map<string, { latest: string; first: string; turns: number }>();
    const note = (id: string, created: string, prompt: string): void => {
      const seen = byId.get(id);
      if (seen === undefined) {
        byId.set(id, { latest: created, first: prompt, turns: 1 });
      } else {
        seen.turns += 1;
        if (created > seen.latest) {
          seen.latest = created;
        } else {
          seen.first = prompt;
        }
      }
    };
    recorded.forEach((c: IConversation) => c.turns.forEach(t => note(c.id, t.created, t.prompt)));
    for (const [run, entry] of this._entries) {
      if (!recorded.some(c => c.turns.some(t => t.run === run))) {
        note(entry.conversation, entry.created, entry.prompt);
      }
    }
    const options = [...byId.entries()]
      .sort((a, b) => (a[1].latest < b[1].latest ? 1 : -1))
      .map(([id, c]) => ({ id, label: `${oneLine(c.first, 40)} (${c.turns})` }));
    if (!byId.has(this._conversation)) {
      options.unshift({ id: this._conversation, label: 'New conversation' });
    }
    return options;
  }

  setConversation(id: string): void {
    this._chosen = true;
    if (id !== this._conversation) {
      this._conversation = id;
      this._stickToBottom = true;
      this.refresh();
    }
  }

  newConversation(): void {
    this.setConversation(UUID.uuid4());
  }

  /** Replies of the shown conversation that are still running. */
  get running(): ReplyView[] {
    return [...this._entries.values()]
      .filter(e => e.conversation === this._conversation && !e.reply.state.finished)
      .map(e => e.reply);
  }

  /**
   * Start a detached run for `prompt` (and its context items) in the shown conversation; the
   * server builds the history. True once the server took it.
   */
  async send(model: string, prompt: string, context: IWireItem[] = []): Promise<boolean> {
    this._chosen = true;
    const now = new Date().toISOString();
    const entry = this._add(this._conversation, now, prompt, null, sentItems(context));
    entry.notebook = this.path;
    this._stickToBottom = true;
    this.refresh();
    try {
      const body = {
        model,
        prompt,
        conversation: entry.conversation,
        notebook: entry.notebook ?? undefined,
        context: context.length > 0 ? context : undefined
      };
      const started = await requestAPI<{ id: string }>('runs', {
        method: 'POST',
        body: JSON.stringify(body)
      });
      this._key(entry, started.id);
      this._changed(); // a running reply: Stop shows
      void this._follow(entry);
      return true;
    } catch (error) {
      // Refused (4xx) or not sent: no run started, so there is nothing to say about a record.
      const code =
        error instanceof ServerConnection.ResponseError
          ? `http_${error.response.status}`
          : 'request_failed';
      entry.reply.markEnded('failed', { code, message: firstLine(messageOf(error)) });
      this._changed();
      return false;
    }
  }

  /** Stop every running reply of the shown conversation (the partials are kept, marked stopped). */
  async stop(): Promise<void> {
    const running = [...this._entries.values()].filter(
      e => e.conversation === this._conversation && !e.reply.state.finished
    );
    await Promise.all(running.map(entry => this._stop(entry)));
  }

  /** Show (and follow) runs of this notebook that are running on the server: after a reload, or from cells. */
  async attachRunning(): Promise<void> {
    const path = this.path;
    // While a send waits for its run id, a listed run may be that one: look again next time.
    if (path === null || this._disposed || this._pending.size > 0) {
      return;
    }
    const query = `runs?status=running&notebook=${encodeURIComponent(path)}`;
    const { runs } = await requestAPI<{ runs: IRunRecord[] }>(query);
    let added: IEntry | null = null;
    for (const record of runs.reverse()) {
      if (this._entries.has(record.id) || this._disposed || this._pending.size > 0) {
        continue;
      }
      const entry = this._add(
        record.conversation ?? 'default',
        record.created,
        record.prompt ?? '',
        record.id
      );
      entry.notebook = record.notebook ?? path;
      entry.reply.applyRecord(record);
      void this._follow(entry);
      added = entry;
    }
    if (added !== null && this.running.length === 0) {
      this._conversation = added.conversation; // show what is streaming now
      this._chosen = true;
      this._stickToBottom = true;
    }
    if (added !== null) {
      this.refresh();
    }
  }

  /** Bring the thread in line with the metadata and the live runs (existing elements are kept). */
  refresh(): void {
    if (this._disposed) {
      return;
    }
    const recorded = this.notebook ? recordedConversations(this.notebook) : [];
    if (!this._chosen && recorded.length > 0) {
      // Until the user picks one, show the notebook's most recent conversation.
      this._conversation = recorded[0].id;
    }
    for (const conversation of recorded) {
      for (const turn of conversation.turns) {
        if (!this._entries.has(turn.run)) {
          const entry = this._add(
            conversation.id,
            turn.created,
            turn.prompt,
            turn.run,
            turn.context
          );
          entry.reply.showFinal({
            id: turn.run,
            model: turn.model,
            status: turn.status,
            text: turn.reply,
            reasoning: turn.reasoning,
            error: turn.error,
            outputTokens: turn.outputTokens
          });
        }
      }
    }
    const shown = [...this._entries.values(), ...this._pending]
      .filter(e => e.conversation === this._conversation)
      .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : 0))
      .map(e => e.node);
    const current = Array.from(this.node.children);
    if (shown.length !== current.length || shown.some((node, i) => node !== current[i])) {
      this.node.replaceChildren(...shown);
    }
    if (shown.length === 0) {
      this.node.appendChild(
        element(
          'p',
          'jp-StreamChat-empty',
          this.path === null
            ? 'No notebook is active: replies are not saved anywhere.'
            : 'Ask about this notebook. Replies are saved in its metadata.'
        )
      );
    }
    this._scroll();
    this._changed();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._life.abort();
    this.notebook?.context.model.metadataChanged.disconnect(this.refresh, this);
    for (const entry of this._entries.values()) {
      entry.abort?.abort(); // detached runs go on without this view
    }
    this._entries.clear();
    this.node.remove();
  }

  private _add(
    conversation: string,
    created: string,
    prompt: string,
    runId: string | null,
    context: ISentItem[] = []
  ): IEntry {
    const reply = new ReplyView(this._context);
    const node = element('div', 'jp-StreamChat-turn');
    if (prompt) {
      node.appendChild(element('div', 'jp-StreamChat-prompt', prompt));
    }
    node.append(...sentContextNodes(context), reply.node);
    let finished = reply.state.finished;
    reply.onRender = () => {
      this._scroll();
      if (reply.state.finished !== finished) {
        finished = reply.state.finished; // the controls (Stop) change only when a run ends
        this._changed();
      }
    };
    const entry: IEntry = {
      conversation,
      created,
      prompt,
      reply,
      node,
      notebook: null,
      abort: null,
      stopWanted: false
    };
    if (runId === null) {
      this._pending.add(entry);
    } else {
      this._key(entry, runId);
    }
    return entry;
  }

  private _key(entry: IEntry, runId: string): void {
    this._pending.delete(entry);
    entry.reply.setRunId(runId);
    const shownAlready = this._entries.get(runId);
    if (shownAlready !== undefined && shownAlready !== entry) {
      // The run ended and its turn reached the notebook's metadata before its POST answered (a loaded
      // machine): one element per run, the one that follows it to its end.
      shownAlready.node.remove();
      shownAlready.reply.dispose();
    }
    this._entries.set(runId, entry);
  }

  /** Follow the run's events until `done`, resuming after drops (Last-Event-ID). */
  private async _follow(entry: IEntry): Promise<void> {
    const runId = entry.reply.runId;
    const abort = new AbortController();
    entry.abort = abort;
    if (entry.stopWanted) {
      void this._stop(entry);
    }
    try {
      await withStreamSlot(
        abort.signal,
        () =>
          followRun(
            (last, signal) =>
              fetchAPI(`runs/${encodeURIComponent(runId)}/events?${STREAM_BATCH}`, {
                headers: { Accept: 'text/event-stream', 'Last-Event-ID': String(last) },
                cache: 'no-store',
                signal
              }),
            event => entry.reply.apply(event),
            abort.signal
          ),
        () => entry.reply.setWaiting(true)
      );
      if (entry.notebook !== null && entry.reply.state.finished) {
        void entry.reply.confirmRecord(this._life.signal);
      }
    } catch (error) {
      if (!abort.signal.aborted) {
        const code = error instanceof StreamRefusedError ? 'not_found' : 'stream_failed';
        entry.reply.markEnded('failed', { code, message: messageOf(error) });
      }
    } finally {
      if (entry.abort === abort) {
        entry.abort = null;
      }
      this._changed();
    }
  }

  private async _stop(entry: IEntry): Promise<void> {
    entry.stopWanted = true;
    const runId = entry.reply.runId;
    if (!runId) {
      return; // stopped as soon as the server names the run
    }
    try {
      await requestAPI(`runs/${encodeURIComponent(runId)}/stop`, { method: 'POST' });
    } catch (error) {
      console.warn(`StreamChat: could not stop run ${runId}`, error);
    }
  }

  private _scroll(): void {
    const node = this.node;
    if (this._stickToBottom && node.scrollHeight - node.clientHeight > node.scrollTop + 1) {
      node.scrollTop = node.scrollHeight;
    }
  }

  private _changed(): void {
    this.onChange?.();
  }

  private _conversation: string;
  private _entries = new Map<string, IEntry>();
  /** Sent, not yet named by the server. */
  private _pending = new Set<IEntry>();
  private _stickToBottom = true;
  private _disposed = false;
  /** Aborted on dispose: ends the questions about records. */
  private _life = new AbortController();
  /** The user (or a run they started or attached to) chose the shown conversation. */
  private _chosen = false;
}
