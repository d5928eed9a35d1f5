/**
 * Compare mode: one prompt to 2-4 models side by side. Each pane is a direct stream
 * (`POST streamchat/stream`): its Stop closes that stream, so the server ends the upstream call
 * at once, and the pane then shows the server's exact record of the run. The panes of one
 * comparison share a conversation id (one turn each in the notebook).
 */

import { UUID } from '@lumino/coreutils';

import { fetchAPI, requestAPI, responseError } from './api';
import { IModelInfo } from './models';
import { button, element } from './dom';
import { IReplyContext, ReplyView, STREAM_BATCH } from './reply';
import { IRunRecord } from './run';
import { sentContextNodes, sentItems } from './sentcontext';
import { costText } from './steering';
import { readRunStream } from './sse';
import { withStreamSlot } from './slots';
import { IWireItem } from './tokens';

export const MIN_PANES = 2;
export const MAX_PANES = 4;

export interface ICompareContext extends IReplyContext {
  /** Insert a pane's reply as a new Markdown cell below the active cell. */
  insertMarkdown(text: string): void;
  /** Server-relative path of the active notebook, or null. */
  notebookPath(): string | null;
}

interface IPane {
  model: string;
  reply: ReplyView;
  abort: AbortController;
  stop: HTMLButtonElement;
  stopped: boolean;
}

export class CompareView {
  readonly node: HTMLElement;

  constructor(private readonly _context: ICompareContext) {
    this.node = element('section', 'jp-StreamChat-compare');
    this.node.setAttribute('aria-label', 'Compare models');
    this._pickers = element('div', 'jp-StreamChat-pickers');
    this._addButton = button('Add model', 'Compare one more model (up to 4)', () => {
      this._addPicker(
        this._models[this._pickerSelects.length % Math.max(1, this._models.length)]?.id
      );
      this._changed();
    });
    this._panes = element('div', 'jp-StreamChat-panes');
    this._summary = element('div', 'jp-StreamChat-summary');
    this._summary.hidden = true;
    const results = element('div', 'jp-StreamChat-results');
    this._sent = element('div', 'jp-StreamChat-comparedContext');
    results.append(this._sent, this._panes, this._summary);
    this.node.append(this._pickers, this._addButton, results);
  }

  onChange: (() => void) | null = null;

  /** Fill the pickers: `initial` model ids first (settings), else the first models offered. */
  setModels(models: IModelInfo[], initial: string[]): void {
    this._models = models;
    const chosen = this._pickerSelects.map(select => select.value);
    const wanted = chosen.length > 0 ? chosen : initial.filter(id => models.some(m => m.id === id));
    while (wanted.length < MIN_PANES && models.length > 0) {
      wanted.push(models[wanted.length % models.length].id);
    }
    this._pickers.replaceChildren();
    this._pickerSelects = [];
    wanted.slice(0, MAX_PANES).forEach(id => this._addPicker(id));
    this._changed();
  }

  get running(): boolean {
    return this._current.some(pane => !pane.reply.state.finished);
  }

  /** Send `prompt` (and its context items) to every picked model, one direct stream each. */
  async compare(prompt: string, context: IWireItem[] = []): Promise<void> {
    this.stopAll();
    this._records.abort(); // the previous panes are gone: stop asking about their records
    this._records = new AbortController();
    const conversation = `compare-${UUID.uuid4()}`;
    this._summary.hidden = true;
    this._summary.replaceChildren();
    this._current = this._pickerSelects.map((select, index) => this._newPane(index, select.value));
    this._sent.replaceChildren(...sentContextNodes(sentItems(context)));
    this._panes.replaceChildren(...this._current.map(p => p.reply.node));
    this._panes.dataset.count = String(this._current.length);
    this._changed();
    const panes = this._current;
    const body = { prompt, conversation, context: context.length > 0 ? context : undefined };
    await Promise.all(panes.map(pane => this._stream(pane, body)));
    await Promise.all(panes.map(pane => pane.reply.whenShown())); // the summary follows the panes
    if (panes === this._current) {
      this._showSummary(panes);
    }
    this._changed();
  }

  stopAll(): void {
    this._current.forEach(pane => this._stopPane(pane));
  }

  private _addPicker(modelId: string | undefined): void {
    const index = this._pickerSelects.length + 1;
    const label = element('label', 'jp-StreamChat-picker');
    const name = element('span', '', `Model ${index}`);
    const select = document.createElement('select');
    select.setAttribute('aria-label', `Model ${index}`);
    for (const model of this._models) {
      const option = document.createElement('option');
      option.value = model.id;
      option.textContent = model.name;
      select.appendChild(option);
    }
    if (modelId) {
      select.value = modelId;
    }
    label.append(name, select);
    if (index > MIN_PANES) {
      const remove = button('Remove', `Remove model ${index}`, () => {
        this._pickerSelects.splice(this._pickerSelects.indexOf(select), 1);
        this.setModels(this._models, []);
      });
      label.appendChild(remove);
    }
    this._pickerSelects.push(select);
    this._pickers.appendChild(label);
    this._addButton.disabled = this._pickerSelects.length >= MAX_PANES;
  }

  private _newPane(index: number, model: string): IPane {
    const name = this._models.find(m => m.id === model)?.name ?? model;
    const reply = new ReplyView(this._context, { label: `Model ${index + 1}: ${name}` });
    reply.node.classList.add('jp-StreamChat-pane');
    let finished = false;
    reply.onRender = () => {
      if (reply.state.finished !== finished) {
        finished = reply.state.finished;
        this._changed();
      }
    };
    const pane: IPane = {
      model,
      reply,
      abort: new AbortController(),
      stop: button('Stop', `Stop ${name}`, () => this._stopPane(pane)),
      stopped: false
    };
    reply.actions.appendChild(pane.stop);
    return pane;
  }

  private async _stream(pane: IPane, request: { [key: string]: unknown }): Promise<void> {
    const notebook = this._context.notebookPath() ?? undefined;
    // The panes are siblings that start the comparison's own conversation (parent null): without it,
    // each would follow the active leaf, which is the first pane while it streams (SPEC 11).
    const body = JSON.stringify({ model: pane.model, ...request, notebook, parent: null });
    const records = this._records.signal;
    const signal = pane.abort.signal;
    try {
      await withStreamSlot(
        signal,
        async () => {
          pane.reply.setWaiting(false);
          const response = await fetchAPI(`stream?${STREAM_BATCH}`, {
            method: 'POST',
            body,
            headers: { Accept: 'text/event-stream' },
            cache: 'no-store',
            signal
          });
          if (!response.ok) {
            pane.reply.markEnded('failed', {
              code: `http_${response.status}`,
              message: await responseError(response)
            });
            return;
          }
          await readRunStream(response, event => pane.reply.apply(event));
        },
        () => pane.reply.setWaiting(true)
      );
    } catch (error) {
      if (!pane.stopped) {
        console.warn(`StreamChat: compare stream for ${pane.model} failed`, error);
      }
    }
    if (!pane.reply.state.finished) {
      await this._settle(pane);
    }
    await this._takeRecord(pane);
    pane.stop.remove();
    this._offerInsert(pane);
    if (notebook !== undefined && pane.reply.runId) {
      void pane.reply.confirmRecord(records);
    }
  }

  /** A stream that ended without `done`: show what the server recorded for the run. */
  private async _settle(pane: IPane): Promise<void> {
    const runId = pane.reply.runId;
    if (runId) {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          const record = await requestAPI<IRunRecord>(`runs/${encodeURIComponent(runId)}`);
          if (record.status !== 'running') {
            pane.reply.showFinal({ ...record, outputTokens: record.usage?.output_tokens });
            return;
          }
        } catch (error) {
          console.warn(`StreamChat: no record of run ${runId}`, error);
          break;
        }
        await new Promise(resolve => setTimeout(resolve, 100));
      }
    }
    pane.reply.markEnded(pane.stopped ? 'stopped' : 'failed', {
      code: 'stream_closed',
      message: pane.stopped ? 'stopped before the server named the run' : 'the stream ended early'
    });
  }

  /** The server's record of the ended run adds its usage and cost (the summary's Cost column). */
  private async _takeRecord(pane: IPane): Promise<void> {
    const runId = pane.reply.runId;
    if (runId) {
      try {
        pane.reply.applyFinished(
          await requestAPI<IRunRecord>(`runs/${encodeURIComponent(runId)}`, { cache: 'no-store' })
        );
      } catch (error) {
        console.warn(`StreamChat: no record of run ${runId}`, error);
      }
    }
  }

  private _stopPane(pane: IPane): void {
    if (!pane.reply.state.finished && !pane.stopped) {
      pane.stopped = true;
      pane.stop.disabled = true;
      pane.abort.abort(); // closing the stream is the stop: the server ends the upstream call
    }
  }

  private _offerInsert(pane: IPane): void {
    if (pane.reply.state.text.trim() === '') {
      return;
    }
    const insert = button('Insert', 'Insert this reply as a new cell below the active cell', () =>
      this._context.insertMarkdown(pane.reply.state.text)
    );
    pane.reply.actions.appendChild(insert);
  }

  private _showSummary(panes: IPane[]): void {
    const table = document.createElement('table');
    table.setAttribute('aria-label', 'Summary');
    const head = table.createTHead().insertRow();
    // What a narrow sidebar shows first: the outcome, its tokens and cost; then the timings.
    for (const title of [
      'Model',
      'Status',
      'Tokens',
      'Cost',
      'First token',
      'Tokens/s',
      'Characters'
    ]) {
      head.appendChild(element('th', '', title));
    }
    const rows = table.createTBody();
    for (const pane of panes) {
      const state = pane.reply.state;
      const ttft = state.timeToFirstToken;
      const rate = state.tokensPerSecond();
      const row = rows.insertRow();
      row.dataset.runId = state.id;
      for (const value of [
        this._models.find(m => m.id === pane.model)?.name ?? pane.model,
        state.status,
        String(state.outputTokens),
        costText(state.cost) || '–',
        ttft === null ? '–' : `${ttft.toFixed(2)} s`,
        rate === null ? '–' : rate.toFixed(1),
        String(state.text.length)
      ]) {
        row.insertCell().textContent = value;
      }
    }
    this._summary.replaceChildren(element('h3', '', 'Summary'), table);
    this._summary.hidden = false;
  }

  private _changed(): void {
    this.onChange?.();
  }

  private _models: IModelInfo[] = [];
  private _pickers: HTMLElement;
  private _pickerSelects: HTMLSelectElement[] = [];
  private _addButton: HTMLButtonElement;
  private _panes: HTMLElement;
  /** The context the current comparison sent. */
  private _sent: HTMLElement;
  private _summary: HTMLElement;
  private _current: IPane[] = [];
  /** Aborted when a new comparison replaces the panes. */
  private _records = new AbortController();
}
