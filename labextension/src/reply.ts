/**
 * One reply as the panel shows it: header (model, status, stats), reasoning collapsed apart, and
 * the Markdown body rendered through JupyterLab's rendermime (sanitized, code highlighted).
 *
 * Smooth on long replies: finished blocks (blocks.ts) are rendered once; only the open tail is
 * rendered again, and an open code fence is shown as plain text until it closes (then highlighted
 * once). Markdown is rendered off the page, in slices of ~10 ms; the page's update loop
 * (updates.ts) puts every changed reply in on one animation frame, at a pace it can afford.
 */

import type { IEditorLanguageRegistry } from '@jupyterlab/codemirror';

import { fencedCode, MarkdownBlocks } from './blocks';
import { addCodeToolbars, ICodeActions, renderCode } from './codeblock';
import { element } from './dom';
import { followRecord, IRecordNote, noteText } from './recorded';
import { inertElement } from './remote';
import { Slicer, UpdateLoop } from './updates';
import { IRunEvent } from './sse';
import { IRunRecord, RunState, RunStatus } from './run';
import { costText } from './steering';

/** What a reply needs from the panel. */
export interface IReplyContext extends ICodeActions {
  /**
   * Render untrusted Markdown into `host`, an element of an inert document, taking out every URL
   * that would load something (render.ts: rendermime, sanitized).
   */
  renderMarkdown(host: HTMLElement, source: string): Promise<void>;
  /** Highlights finished code blocks without the Markdown pipeline (null: Markdown does). */
  languages: IEditorLanguageRegistry | null;
}

/** Least time between two updates of the streaming replies (ms). */
export const RENDER_INTERVAL = 50;

/** All replies of the page update together, at a pace their cost allows (updates.ts). */
const updates = new UpdateLoop({ minInterval: RENDER_INTERVAL });

/** Least time between two updates of a streaming reply's stats line (ms). */
const STATS_INTERVAL = 500;

/**
 * `?batch=` for the panel's streams: the server writes at most every this many seconds, several
 * events per write. A reply renders at most every `RENDER_INTERVAL` anyway, and one network read
 * per token (200/s) would cost the page more than the rendering.
 */
export const STREAM_BATCH = `batch=${RENDER_INTERVAL / 1000}`;

const STATUS_TEXT: Record<RunStatus, string> = {
  running: 'streaming',
  completed: 'completed',
  stopped: 'stopped (partial reply kept)',
  failed: 'failed',
  interrupted: 'interrupted (server stopped)'
};

export class ReplyView {
  readonly node: HTMLElement;
  readonly state: RunState;

  constructor(
    private readonly _context: IReplyContext,
    options: { startedAt?: number; label?: string } = {}
  ) {
    this.state = new RunState(options.startedAt);
    this.node = element('article', 'jp-StreamChat-reply');
    this.node.dataset.status = 'running';
    this.node.setAttribute('aria-busy', 'true');

    const header = element('div', 'jp-StreamChat-replyHeader');
    this._modelNode = element('span', 'jp-StreamChat-replyModel', options.label ?? '');
    this._statusNode = element('span', 'jp-StreamChat-replyStatus', STATUS_TEXT.running);
    this._statsNode = element('span', 'jp-StreamChat-replyStats');
    this.actions = element('span', 'jp-StreamChat-replyActions');
    header.append(this._modelNode, this._statusNode, this._statsNode, this.actions);

    this._reasoning = document.createElement('details');
    this._reasoning.className = 'jp-StreamChat-reasoning';
    this._reasoning.hidden = true;
    const summary = element('summary', '', 'Reasoning');
    this._reasoningText = element('div', 'jp-StreamChat-reasoningText');
    this._reasoning.append(summary, this._reasoningText);

    this._body = element('div', 'jp-StreamChat-replyBody');
    this._tail = this._newTail();
    this._body.appendChild(this._tail);

    this._errorNode = element('div', 'jp-StreamChat-replyError');
    this._errorNode.hidden = true;

    this._recordNode = element('div', 'jp-StreamChat-replyRecord');
    this._recordNode.setAttribute('role', 'status');
    this._recordNode.hidden = true;

    this.node.append(header, this._reasoning, this._body, this._errorNode, this._recordNode);
  }

  /** Buttons of this reply (compare panes put Stop and Insert here). */
  readonly actions: HTMLElement;

  /** Called after each render of a running reply (the panel keeps the view scrolled). */
  onRender: (() => void) | null = null;

  get runId(): string {
    return this.state.id;
  }

  setRunId(id: string): void {
    this.state.id = id;
    this.node.dataset.runId = id;
  }

  /** Apply a stream event; the page follows with the next update. */
  apply(event: IRunEvent): void {
    if (this.state.apply(event)) {
      if (event.type === 'run' && this.state.id) {
        this.setRunId(this.state.id);
      }
      this._schedule();
    }
  }

  /** Attach to a run this page did not start: its record gives the clock and the model. */
  applyRecord(record: IRunRecord): void {
    this.state.applyRecord(record);
    this.setRunId(record.id);
    this._schedule();
  }

  /** Show a finished reply at once (a turn from the notebook's metadata, or a final record). */
  showFinal(fields: {
    id: string;
    model: string;
    status: RunStatus;
    text: string;
    reasoning?: string;
    error?: { code: string; message: string } | null;
    outputTokens?: number;
    inputTokens?: number;
    cost?: number | null;
    created?: string;
    firstToken?: string | null;
    finished?: string | null;
  }): void {
    const state = this.state;
    this.setRunId(fields.id);
    state.model = fields.model;
    state.text = fields.text;
    state.reasoning = fields.reasoning ?? '';
    state.status = fields.status;
    state.error = fields.error ?? null;
    if (fields.outputTokens !== undefined) {
      state.usage = { ...state.usage, output_tokens: fields.outputTokens };
    }
    if (fields.inputTokens !== undefined) {
      state.usage = { ...state.usage, input_tokens: fields.inputTokens };
    }
    state.cost = fields.cost ?? state.cost;
    state.applyTimes(fields);
    state.finishedAt ??= Date.now();
    this._schedule();
  }

  /** Take what the server's record of the ended run adds: its usage and cost. */
  applyFinished(record: IRunRecord): void {
    const state = this.state;
    if (record.usage) {
      state.usage = { ...state.usage, ...record.usage };
    }
    state.cost = typeof record.cost === 'number' ? record.cost : state.cost;
    this._forceStats = true;
    this._schedule();
  }

  /** Say that the reply waits for a free connection (the browser allows only a few streams). */
  setWaiting(waiting: boolean): void {
    if (!this.state.finished) {
      this._statusNode.textContent = waiting
        ? 'waiting for a free connection'
        : STATUS_TEXT.running;
    }
  }

  /** End a reply whose stream broke off without a `done` (e.g. the user closed a direct stream). */
  markEnded(status: RunStatus, error: { code: string; message: string } | null = null): void {
    if (!this.state.finished) {
      this.state.status = status;
      this.state.error = error;
      this.state.finishedAt = Date.now();
      this._schedule();
    }
  }

  /**
   * Once the run ended, ask the server whether its notebook holds it, and say so under the reply
   * ("Saved in …" only when the server confirms it). Nothing for a run without a notebook.
   */
  async confirmRecord(signal: AbortSignal): Promise<void> {
    const runId = this.runId;
    if (!runId) {
      return; // refused: no run, nothing to record
    }
    try {
      await followRecord(runId, note => this._showRecord(note), signal);
    } catch (error) {
      if (!signal.aborted) {
        console.warn(`StreamChat: could not ask whether run ${runId} is recorded`, error);
      }
    }
  }

  private _showRecord(note: IRecordNote): void {
    if (this._disposed) {
      return;
    }
    this.node.dataset.recorded = note.state;
    this._recordNode.textContent = noteText(note);
    this._recordNode.hidden = false;
    this._recordNode.classList.toggle('jp-StreamChat-warning', note.state === 'gone');
  }

  dispose(): void {
    updates.cancel(this);
    this._disposed = true;
    this._onShown.splice(0).forEach(resolve => resolve());
    this.node.remove();
  }

  /** Resolves once the page shows this reply as it is now (the page follows events a little later). */
  whenShown(): Promise<void> {
    if (this._disposed || this._showsState()) {
      return Promise.resolve();
    }
    this._schedule();
    return new Promise(resolve => this._onShown.push(resolve));
  }

  private _showsState(): boolean {
    const state = this.state;
    return (
      this._shownText === state.text &&
      this._shownFinished === state.finished &&
      this.node.dataset.status === state.status
    );
  }

  /** Should the next update come at once (the reply just ended) rather than at the page's pace? */
  get urgent(): boolean {
    return this.state.finished;
  }

  private _schedule(): void {
    if (!this._disposed) {
      updates.request(this);
    }
  }

  /**
   * Render what changed into detached nodes, in slices of ~10 ms between which the browser runs
   * other tasks (a code block's highlighting alone can take tens of milliseconds); the update loop
   * puts them in the page.
   */
  async prepare(): Promise<() => void> {
    const { text, finished } = this.state;
    const update: IPreparedUpdate = { text, finished, reset: false, sealed: [], tail: null };
    if (text !== this._shownText || finished !== this._shownFinished) {
      const split = finished
        ? { ...this._blocks.finish(text), tail: null }
        : this._blocks.update(text);
      update.reset = split.reset;
      const slicer = new Slicer();
      for (const source of split.sealed) {
        const block = inertElement(
          'div',
          'jp-StreamChat-block jp-RenderedMarkdown jp-RenderedHTMLCommon'
        );
        const fence = fencedCode(source);
        await (fence !== null && this._context.languages !== null
          ? renderCode(block, fence, this._context.languages)
          : this._renderMarkdown(block, source));
        addCodeToolbars(block, this._context);
        update.sealed.push(block);
        await slicer.maybeYield();
      }
      const tail = split.tail;
      if (tail === null || tail.source.trim() === '') {
        update.tail = { source: '', nodes: [] };
      } else if (tail.fence !== null) {
        // An open code fence is plain text (cheap on every update), highlighted once closed.
        const pre = element('pre', 'jp-StreamChat-openFence');
        pre.textContent = tail.fence.code;
        update.tail = { source: tail.source, nodes: [pre] };
      } else if (tail.source !== this._tailShown || update.reset || update.sealed.length > 0) {
        const scratch = inertElement('div');
        await this._renderMarkdown(scratch, tail.source);
        update.tail = { source: tail.source, nodes: Array.from(scratch.childNodes) };
      }
    }
    return () => {
      if (!this._disposed) {
        this._commit(update);
      }
    };
  }

  private _commit(update: IPreparedUpdate): void {
    const state = this.state;
    if (update.reset) {
      this._body.replaceChildren(this._tail); // a snapshot replaced the text: start the body over
    }
    for (const block of update.sealed) {
      this._body.insertBefore(block, this._tail);
    }
    if (update.tail !== null) {
      this._tail.replaceChildren(...update.tail.nodes);
      this._tailShown = update.tail.source;
    }
    this._shownText = update.text;
    this._shownFinished = update.finished;

    this._modelNode.textContent = this._modelNode.textContent || state.model;
    this.node.dataset.status = state.status;
    this.node.setAttribute('aria-busy', String(!state.finished));
    this._statusNode.textContent = STATUS_TEXT[state.status] ?? state.status;
    // Stats change on every update; showing them twice a second is enough and saves layout work.
    const now = performance.now();
    if (state.finished || now - this._statsShownAt >= STATS_INTERVAL || this._forceStats) {
      this._forceStats = false;
      this._statsShownAt = now;
      this._statsNode.textContent = [state.statsLine(), costText(state.cost)]
        .filter(Boolean)
        .join(' · ');
      if (state.cost !== null) {
        this.node.dataset.cost = String(state.cost);
      }
    }
    if (state.reasoning !== this._shownReasoning) {
      this._shownReasoning = state.reasoning;
      this._reasoning.hidden = state.reasoning === '';
      this._reasoningText.textContent = state.reasoning;
    }
    const errorLine = state.errorLine;
    this._errorNode.hidden = errorLine === '';
    this._errorNode.textContent = errorLine;
    this._errorNode.setAttribute('role', errorLine ? 'alert' : 'none');
    this.onRender?.();
    if (this._onShown.length > 0 && this._showsState()) {
      this._onShown.splice(0).forEach(resolve => resolve());
    }
  }

  private _renderMarkdown(host: HTMLElement, source: string): Promise<void> {
    return this._context.renderMarkdown(host, source).catch(error => {
      host.textContent = source;
      console.warn('StreamChat: could not render Markdown', error);
    });
  }

  private _newTail(): HTMLElement {
    return element('div', 'jp-StreamChat-tail jp-RenderedMarkdown jp-RenderedHTMLCommon');
  }

  private _blocks = new MarkdownBlocks();
  private _body: HTMLElement;
  /** The open end of the reply, rendered again on each update; finished blocks go before it. */
  private _tail: HTMLElement;
  /** The Markdown the tail shows. */
  private _tailShown = '';
  private _modelNode: HTMLElement;
  private _statusNode: HTMLElement;
  private _statsNode: HTMLElement;
  private _reasoning: HTMLDetailsElement;
  private _reasoningText: HTMLElement;
  private _errorNode: HTMLElement;
  private _recordNode: HTMLElement;
  private _shownText = '';
  private _shownFinished = false;
  private _shownReasoning = '';
  private _statsShownAt = -Infinity;
  private _forceStats = false;
  private _onShown: (() => void)[] = [];
  private _disposed = false;
}

/** One update of a reply, rendered off the page and put in on one animation frame. */
interface IPreparedUpdate {
  text: string;
  finished: boolean;
  /** The text was replaced (a snapshot): the body starts over. */
  reset: boolean;
  /** Newly finished blocks, rendered, in order. */
  sealed: HTMLElement[];
  /** The tail's new content, or null when it did not change. */
  tail: { source: string; nodes: Node[] } | null;
}
