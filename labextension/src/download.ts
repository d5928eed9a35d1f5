/**
 * "Export" and "Insert as cells" of the panel. Export asks the server for the shown branch as a file
 * (`GET streamchat/export`: the one Python renderer, the one `history()` uses too) and lets the
 * browser download the bytes from a Blob in the page: no navigation, nothing else fetched.
 * "Insert as cells" puts the branch (exporting.ts) as Markdown cells below the active cell.
 */

import type { NotebookPanel } from '@jupyterlab/notebook';

import { fetchAPI, responseError } from './api';
import { EXPORT_FORMATS, ExportFormat } from './chatsection';
import { attachmentName, IExportTurn, turnMarkdown } from './exporting';
import { insertCellBelow } from './notebook';

/** How long a download's Blob URL is kept (ms). */
const REVOKE_AFTER = 60_000;

/** Let the browser download `blob` as `name`. */
export function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  // Freed later, not at once: a browser may read the Blob after this task (Firefox does).
  setTimeout(() => URL.revokeObjectURL(url), REVOKE_AFTER);
}

/**
 * Download the branch of `conversation` ending at `leaf` (the shown alternative) in `format`, as the
 * server renders it; what happened, in words (the server's one-line reason when it refused).
 */
export async function exportBranch(
  format: ExportFormat,
  notebook: string | null,
  conversation: string,
  leaf: string | null,
  turns: number
): Promise<{ text: string; error: boolean }> {
  const query = new URLSearchParams({ conversation, format });
  if (notebook !== null) {
    query.set('notebook', notebook);
  }
  if (leaf !== null) {
    query.set('leaf', leaf);
  }
  const response = await fetchAPI(`export?${query.toString()}`, { cache: 'no-store' });
  if (!response.ok) {
    return { text: `Export failed: ${await responseError(response)}`, error: true };
  }
  const name = attachmentName(response.headers.get('Content-Disposition'), `export.${format}`);
  download(await response.blob(), name);
  const count = turns === 1 ? '1 turn' : `${turns} turns`;
  return { text: `Exported ${count} as ${EXPORT_FORMATS[format]}: ${name}`, error: false };
}

/** One Markdown cell per turn, below the active cell, in order; what happened, in words. */
export function insertTurnCells(panel: NotebookPanel, turns: readonly IExportTurn[]): string {
  for (const turn of turns) {
    insertCellBelow(panel, turnMarkdown(turn), 'markdown');
  }
  return `Inserted ${turns.length} Markdown cells below the active cell.`;
}
