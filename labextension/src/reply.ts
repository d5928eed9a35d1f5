/**
 * One reply as the panel shows it: header (model, status, stats), reasoning collapsed apart, and
 * the Markdown body rendered through JupyterLab's rendermime (sanitized, code highlighted).
 *
 * Smooth on long replies: finished blocks (blocks.ts) are rendered once; only the open tail is
 * rendered again, at most once per animation frame, and an open code fence is shown as plain
 * text until it closes (then highlighted once).
 */

import { Clipboard } from '@jupyterlab/apputils';
import { IRenderMimeRegistry, renderMarkdown } from '@jupyterlab/rendermime';

import { MarkdownBlocks } from './blocks';
import { IRunEvent } from './sse';
import { IRunRecord, RunState, RunStatus } from './run';

/** What a reply needs from the panel. */
export interface IReplyContext {
  rendermime: IRenderMimeRegistry;
  /** Insert a code cell with `code` below the active cell of the notebook. */
  insertCode(code: string): void;
}

/** Least time between two renders of a streaming reply (ms). */
export const RENDER_INTERVAL = 50;

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

    this.node.append(header, this._reasoning, this._body, this._errorNode);
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

  /** Apply a stream event; the DOM follows on the next animation frame. */
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
    state.finishedAt ??= Date.now();
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

  /** Render now (tests and the final state); normally renders are batched per frame. */
  flush(): void {
    if (this._frame !== 0) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    window.clearTimeout(this._timer);
    this._timer = 0;
    this._render();
  }

  dispose(): void {
    if (this._frame !== 0) {
      cancelAnimationFrame(this._frame);
    }
    window.clearTimeout(this._timer);
    this._disposed = true;
    this.node.remove();
  }

  /**
   * Render on the next animation frame, but at most every `RENDER_INTERVAL` ms: each render costs
   * the browser a style, layout and paint pass, and 20 updates per second already read as smooth.
   */
  private _schedule(): void {
    if (this._frame !== 0 || this._timer !== 0 || this._disposed) {
      return;
    }
    const wait = this._lastRender + RENDER_INTERVAL - performance.now();
    if (wait > 0 && !this.state.finished) {
      this._timer = window.setTimeout(() => {
        this._timer = 0;
        this._schedule();
      }, wait);
      return;
    }
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._lastRender = performance.now();
      this._render();
    });
  }

  private _render(): void {
    if (this._disposed) {
      return;
    }
    const state = this.state;
    this._modelNode.textContent = this._modelNode.textContent || state.model;
    this.node.dataset.status = state.status;
    this.node.setAttribute('aria-busy', String(!state.finished));
    this._statusNode.textContent = STATUS_TEXT[state.status] ?? state.status;
    // Stats change every render; showing them twice a second is enough and saves layout work.
    const now = performance.now();
    if (state.finished || now - this._statsShownAt >= STATS_INTERVAL) {
      this._statsShownAt = now;
      this._statsNode.textContent = state.statsLine();
    }

    if (state.reasoning !== this._shownReasoning) {
      this._shownReasoning = state.reasoning;
      this._reasoning.hidden = state.reasoning === '';
      this._reasoningText.textContent = state.reasoning;
    }
    this._renderText();

    const errorLine = state.errorLine;
    this._errorNode.hidden = errorLine === '';
    this._errorNode.textContent = errorLine;
    this._errorNode.setAttribute('role', errorLine ? 'alert' : 'none');
    this.onRender?.();
  }

  private _renderText(): void {
    const state = this.state;
    if (
      state.text === this._shownText &&
      state.finished === this._shownFinished &&
      !this._tailStale
    ) {
      return;
    }
    this._shownText = state.text;
    this._tailStale = false;
    this._shownFinished = state.finished;
    const split = state.finished
      ? { ...this._blocks.finish(state.text), tail: null }
      : this._blocks.update(state.text);
    if (split.reset) {
      // A snapshot replaced the text: start the body over.
      this._body.replaceChildren();
      this._tail = this._newTail();
      this._body.appendChild(this._tail);
    }
    for (const source of split.sealed) {
      // The stale tail becomes the block's placeholder until the block is rendered: no flash.
      const block = this._tail;
      block.className = 'jp-StreamChat-block jp-RenderedMarkdown jp-RenderedHTMLCommon';
      this._tail = this._newTail();
      this._body.appendChild(this._tail);
      void this._renderMarkdown(block, source).then(() => this._addCodeToolbars(block));
    }
    const tail = split.tail;
    if (tail === null || tail.source.trim() === '') {
      this._tailWanted = null;
      this._tail.replaceChildren();
    } else if (tail.fence !== null) {
      this._showOpenFence(tail.fence.code);
    } else {
      this._tailWanted = tail.source;
      this._pumpTail();
    }
  }

  /** An open code fence is shown as plain text (cheap per frame) and highlighted once closed. */
  private _showOpenFence(code: string): void {
    this._tailWanted = null;
    let pre = this._tail.querySelector(':scope > pre.jp-StreamChat-openFence');
    if (pre === null) {
      pre = element('pre', 'jp-StreamChat-openFence');
      this._tail.replaceChildren(pre);
      this._tailShown = '';
    }
    pre.textContent = code;
  }

  /**
   * Render the open tail: one render at a time, into a scratch node swapped in when done, so a
   * slow render never overwrites a newer state; the latest source follows on the next frame.
   */
  private _pumpTail(): void {
    const source = this._tailWanted;
    if (this._tailBusy || source === null || source === this._tailShown) {
      return;
    }
    this._tailBusy = true;
    const tail = this._tail;
    const scratch = document.createElement('div');
    void this._renderMarkdown(scratch, source).then(() => {
      this._tailBusy = false;
      if (this._disposed) {
        return;
      }
      if (tail === this._tail && this._tailWanted !== null) {
        tail.replaceChildren(...Array.from(scratch.childNodes));
        this._tailShown = source;
      }
      if (this._tailWanted !== null && this._tailWanted !== this._tailShown) {
        this._tailStale = true; // the next render pumps the latest tail
        this._schedule();
      }
    });
  }

  private _renderMarkdown(host: HTMLElement, source: string): Promise<void> {
    const rendermime = this._context.rendermime;
    return renderMarkdown({
      host,
      source,
      trusted: false, // model output is untrusted: the sanitizer runs
      sanitizer: rendermime.sanitizer,
      resolver: rendermime.resolver,
      linkHandler: rendermime.linkHandler,
      shouldTypeset: true,
      latexTypesetter: rendermime.latexTypesetter,
      markdownParser: rendermime.markdownParser
    }).catch(error => {
      host.textContent = source;
      console.warn('StreamChat: could not render Markdown', error);
    });
  }

  /** "Copy" and "Insert cell" on every code block of a rendered block. */
  private _addCodeToolbars(block: HTMLElement): void {
    for (const pre of Array.from(block.querySelectorAll('pre'))) {
      const code = (pre.textContent ?? '').replace(/\n$/, '');
      const bar = element('div', 'jp-StreamChat-codeToolbar');
      const copy = button('Copy', 'Copy this code', () => {
        Clipboard.copyToSystem(code);
        copy.textContent = 'Copied';
        setTimeout(() => (copy.textContent = 'Copy'), 1500);
      });
      const insert = button(
        'Insert cell',
        'Insert this code as a new cell below the active cell',
        () => this._context.insertCode(code)
      );
      bar.append(copy, insert);
      const wrapper = element('div', 'jp-StreamChat-code');
      pre.replaceWith(wrapper);
      wrapper.append(bar, pre);
    }
  }

  private _newTail(): HTMLElement {
    this._tailShown = '';
    return element('div', 'jp-StreamChat-tail jp-RenderedMarkdown jp-RenderedHTMLCommon');
  }

  private _blocks = new MarkdownBlocks();
  private _body: HTMLElement;
  private _tail: HTMLElement;
  /** Markdown the tail should show (null: an open fence or nothing) and what it shows. */
  private _tailWanted: string | null = null;
  private _tailShown = '';
  private _tailBusy = false;
  private _modelNode: HTMLElement;
  private _statusNode: HTMLElement;
  private _statsNode: HTMLElement;
  private _reasoning: HTMLDetailsElement;
  private _reasoningText: HTMLElement;
  private _errorNode: HTMLElement;
  private _shownText = '';
  private _tailStale = false;
  private _shownFinished = false;
  private _shownReasoning = '';
  private _frame = 0;
  private _timer = 0;
  private _lastRender = -Infinity;
  private _statsShownAt = -Infinity;
  private _disposed = false;
}

export function element(tag: string, className = '', text = ''): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

export function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = 'jp-StreamChat-button';
  node.textContent = label;
  node.title = title;
  node.addEventListener('click', onClick);
  return node;
}
