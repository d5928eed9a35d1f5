/**
 * What the panel reads from and writes to the active notebook: its recorded conversations
 * (`metadata.streamchat`, SPEC section 6), new cells, and the context chip's text.
 */

import { ICodeCellModel } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import type { JSONObject } from '@lumino/coreutils';

import { IOutputImage } from './contextmodel';
import { conversationsOf, METADATA_KEY, own } from './metadata';
import { RunStatus } from './run';
import { ISentItem, recordedItems } from './sentcontext';
import { isObject } from './util';

/** One recorded turn, as the panel uses it. */
export interface IRecordedTurn {
  run: string;
  /** The run id it follows (SPEC 11); version 1: the turn before it, as metadata.ts reads it. */
  parent: string | null;
  model: string;
  mode: string;
  prompt: string;
  reply: string;
  reasoning: string;
  status: RunStatus;
  error: { code: string; message: string } | null;
  outputTokens?: number;
  inputTokens?: number;
  created: string;
  firstToken: string | null;
  finished: string | null;
  /** USD, when the server knew a price. */
  cost: number | null;
  /** How it was asked (`temperature`, `max_tokens`, `seed`, `top_p`, `system`). */
  params: { [key: string]: unknown };
  responseModel: string | null;
  systemFingerprint: string | null;
  messagesSha256: string | null;
  /** What was sent besides the prompt. */
  context: ISentItem[];
  /** The turn as read from the metadata (read only): the JSON export's entry, the replay's context. */
  raw: JSONObject;
}

export interface IConversation {
  id: string;
  turns: IRecordedTurn[];
  /** Its active leaf (SPEC 11): the recorded `active`, else its last turn. */
  active: string | null;
  /** `created` of its newest turn (ISO-8601), for "most recent first". */
  latest: string;
}

/** Server-relative path of a notebook on the server's own drive, else null (not recorded). */
export function serverPath(panel: NotebookPanel | null): string | null {
  if (panel === null || panel.context.path !== panel.context.localPath) {
    return null;
  }
  return panel.context.localPath;
}

/** The conversations recorded in a notebook, most recently active first. */
export function recordedConversations(panel: NotebookPanel): IConversation[] {
  const conversations = conversationsOf(panel.context.model.getMetadata(METADATA_KEY)) ?? {};
  const result: IConversation[] = [];
  // Own keys only: a conversation id is data (`constructor`, `__proto__`), never a prototype lookup.
  for (const id of Object.keys(conversations)) {
    const turns = own(conversations[id], 'turns');
    const parsed: IRecordedTurn[] = [];
    // The reading rule of metadata.ts `upgraded`, turn by turn, so that what can be read shows even
    // where the section as a whole may not be written.
    let previous: string | null = null;
    for (const value of Array.isArray(turns) ? turns : []) {
      const turn = parseTurn(value, previous);
      if (turn !== null) {
        parsed.push(turn);
        previous = turn.run;
      }
    }
    if (parsed.length > 0) {
      const active = own(conversations[id], 'active');
      result.push({
        id,
        turns: parsed,
        active: typeof active === 'string' ? active : previous,
        latest: parsed[parsed.length - 1].created
      });
    }
  }
  return result.sort((a, b) => (a.latest < b.latest ? 1 : a.latest > b.latest ? -1 : 0));
}

function parseTurn(value: unknown, previous: string | null): IRecordedTurn | null {
  const run = own(value, 'run');
  if (typeof run !== 'string') {
    return null;
  }
  const reply = own(value, 'reply');
  const error = own(reply, 'error');
  const outputTokens = own(own(reply, 'usage'), 'output_tokens');
  const inputTokens = own(own(reply, 'usage'), 'input_tokens');
  const parent = own(value, 'parent');
  const params = own(value, 'params');
  const cost = own(value, 'cost');
  return {
    run,
    parent: parent === undefined ? previous : typeof parent === 'string' ? parent : null,
    model: str(own(value, 'model')),
    mode: str(own(value, 'mode')),
    prompt: str(own(own(value, 'prompt'), 'content')),
    reply: str(own(reply, 'content')),
    reasoning: str(own(reply, 'reasoning')),
    status: (str(own(reply, 'status')) || 'completed') as RunStatus,
    error: isObject(error)
      ? { code: str(own(error, 'code')), message: str(own(error, 'message')) }
      : null,
    outputTokens: typeof outputTokens === 'number' ? outputTokens : undefined,
    inputTokens: typeof inputTokens === 'number' ? inputTokens : undefined,
    created: str(own(value, 'created')),
    firstToken: strOrNull(own(value, 'first_token')),
    finished: strOrNull(own(value, 'finished')),
    cost: typeof cost === 'number' && Number.isFinite(cost) ? cost : null,
    params: isObject(params) ? params : {},
    responseModel: strOrNull(own(value, 'response_model')),
    systemFingerprint: strOrNull(own(value, 'system_fingerprint')),
    messagesSha256: strOrNull(own(value, 'messages_sha256')),
    context: recordedItems(own(value, 'context')),
    raw: value as JSONObject
  };
}

/** Insert a new cell below the active cell (at the end if none) holding `source`. */
export function insertCellBelow(
  panel: NotebookPanel,
  source: string,
  type: 'code' | 'markdown'
): void {
  const notebook = panel.content;
  if (notebook.widgets.length === 0) {
    NotebookActions.insertBelow(notebook);
  } else {
    if (notebook.activeCellIndex < 0) {
      notebook.activeCellIndex = notebook.widgets.length - 1;
    }
    NotebookActions.insertBelow(notebook);
  }
  if (notebook.activeCell?.model.type !== type) {
    NotebookActions.changeCellType(notebook, type);
  }
  notebook.activeCell?.model.sharedModel.setSource(source);
}

/** The formats a model takes (SPEC 10), in the order an output's first one is taken. */
const IMAGE_MIMES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];

/** The active cell's name in the context ("cell 3"), or null without one. */
export function activeCellName(panel: NotebookPanel | null): string | null {
  return panel?.content.activeCell ? `cell ${panel.content.activeCellIndex + 1}` : null;
}

/** The active cell's image outputs, read from the notebook model (no kernel needed). */
export function activeCellImages(panel: NotebookPanel | null): IOutputImage[] {
  const cell = panel?.content.activeCell;
  if (!panel || !cell || cell.model.type !== 'code') {
    return [];
  }
  const name = activeCellName(panel);
  const outputs = (cell.model as ICodeCellModel).outputs;
  const images: IOutputImage[] = [];
  for (let i = 0; i < outputs.length; i++) {
    const data = outputs.get(i).data;
    const mime = IMAGE_MIMES.find(m => typeof data[m] === 'string');
    if (mime !== undefined) {
      images.push({
        key: `${cell.model.id}:${i}`,
        name: `${name} image ${images.length + 1}`,
        mime,
        data: data[mime] as string
      });
    }
  }
  return images;
}

/** The context chip's text: the selection in the active cell, else the cell and its error. */
export function cellContext(panel: NotebookPanel | null): string {
  const cell = panel?.content.activeCell;
  if (!panel || !cell) {
    return '';
  }
  const index = panel.content.activeCellIndex + 1;
  const source = cell.model.sharedModel.getSource();
  const editor = cell.editor;
  if (editor !== null) {
    const selection = editor.getSelection();
    const start = editor.getOffsetAt(selection.start);
    const end = editor.getOffsetAt(selection.end);
    if (start !== end) {
      const selected = source.slice(Math.min(start, end), Math.max(start, end));
      return `Selection from cell ${index} of ${panel.context.localPath}:\n${fenced(selected)}`;
    }
  }
  const language = cell.model.type === 'code' ? languageOf(panel) : '';
  const parts = [`Cell ${index} of ${panel.context.localPath}:\n${fenced(source, language)}`];
  if (cell.model.type === 'code') {
    const error = errorOutput(cell.model as ICodeCellModel);
    if (error) {
      parts.push(`Its error:\n${fenced(error)}`);
    }
  }
  return parts.join('\n');
}

function errorOutput(model: ICodeCellModel): string {
  const outputs = model.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs.get(i).toJSON();
    if (output.output_type === 'error') {
      const traceback = Array.isArray(output.traceback) ? output.traceback.join('\n') : '';
      // Tracebacks carry terminal colours: the model needs the words only.
      const plain = traceback.replace(ANSI_ESCAPE, '');
      return plain || `${String(output.ename)}: ${String(output.evalue)}`;
    }
  }
  return '';
}

// The ESC control character is the point of this pattern.
// eslint-disable-next-line no-control-regex
const ANSI_ESCAPE = /\u001b\[[0-9;]*[A-Za-z]/g;

function languageOf(panel: NotebookPanel): string {
  const info = panel.context.model.getMetadata('language_info') as unknown;
  return str(own(info, 'name'));
}

/** A fenced block long enough that the text's own backticks cannot close it. */
function fenced(text: string, language = ''): string {
  const longest = Math.max(2, ...Array.from(text.matchAll(/`+/g), m => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${language}\n${text}\n${fence}`;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function strOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}
