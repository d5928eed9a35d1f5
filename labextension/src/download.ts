/**
 * "Export" and "Insert as cells" of the panel: the shown branch (exporting.ts builds the text) as a
 * file the browser downloads, or as Markdown cells below the active cell. A download is made from a
 * Blob in the page: nothing is fetched.
 */

import type { NotebookPanel } from '@jupyterlab/notebook';

import { EXPORT_FORMATS, ExportFormat } from './chatsection';
import {
  branchHTML,
  branchJSON,
  branchMarkdown,
  exportFileName,
  IExportTurn,
  turnMarkdown
} from './exporting';
import { insertCellBelow } from './notebook';
import { inertElement } from './remote';

const MIME: Record<ExportFormat, string> = {
  markdown: 'text/markdown',
  html: 'text/html',
  json: 'application/json'
};
/** How long a download's Blob URL is kept (ms). */
const REVOKE_AFTER = 60_000;

const EXTENSION: Record<ExportFormat, string> = { markdown: 'md', html: 'html', json: 'json' };

/** Render untrusted Markdown into an inert host (the panel's sanitizing renderer). */
export type MarkdownRenderer = (host: HTMLElement, source: string) => Promise<void>;

/** The title of an export: the notebook and the conversation's first prompt. */
export function exportTitle(notebook: string | null, turns: readonly IExportTurn[]): string {
  const first = turns[0]?.prompt.replace(/\s+/g, ' ').trim() ?? '';
  const about = first.length > 60 ? `${first.slice(0, 59)}…` : first;
  return notebook === null ? `Chat: ${about}` : `${notebook}: ${about}`;
}

/** The file's text in `format`; HTML renders each reply as the panel does (sanitized, inert). */
export async function exportText(
  format: ExportFormat,
  notebook: string | null,
  conversation: string,
  turns: readonly IExportTurn[],
  render: MarkdownRenderer
): Promise<string> {
  const title = exportTitle(notebook, turns);
  if (format === 'markdown') {
    return branchMarkdown(turns);
  }
  if (format === 'json') {
    return branchJSON(notebook, conversation, turns);
  }
  const rendered: string[] = [];
  for (const turn of turns) {
    const host = inertElement('div');
    await render(host, turn.reply);
    rendered.push(host.innerHTML);
  }
  return branchHTML(title, turns, rendered);
}

/** Let the browser download `text` as `<notebook>-<conversation>.<ext>`. */
export function download(
  format: ExportFormat,
  text: string,
  notebook: string | null,
  conversation: string
): string {
  const name = exportFileName(notebook, conversation, EXTENSION[format]);
  const url = URL.createObjectURL(new Blob([text], { type: `${MIME[format]};charset=utf-8` }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  // Freed later, not at once: a browser may read the Blob after this task (Firefox does).
  setTimeout(() => URL.revokeObjectURL(url), REVOKE_AFTER);
  return name;
}

/** Download the branch in `format`; what happened, in words. */
export async function exportBranch(
  format: ExportFormat,
  notebook: string | null,
  conversation: string,
  turns: readonly IExportTurn[],
  render: MarkdownRenderer
): Promise<string> {
  const text = await exportText(format, notebook, conversation, turns, render);
  const name = download(format, text, notebook, conversation);
  return `Exported ${turns.length} turns as ${EXPORT_FORMATS[format]}: ${name}`;
}

/** One Markdown cell per turn, below the active cell, in order; what happened, in words. */
export function insertTurnCells(panel: NotebookPanel, turns: readonly IExportTurn[]): string {
  for (const turn of turns) {
    insertCellBelow(panel, turnMarkdown(turn), 'markdown');
  }
  return `Inserted ${turns.length} Markdown cells below the active cell.`;
}
