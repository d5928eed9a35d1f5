/**
 * The active branch of a conversation as Markdown, HTML and JSON ("Export") and as Markdown cells
 * ("Insert as cells"), and what a replay found out (SPEC 11). Pure: unit tested in node.
 *
 * One turn is one Markdown section, as the widgets' `history().to_markdown()` writes it
 * (kernel/_history.py): `**You**`, the prompt, `**<model>** (<status · stats · cost>)`, the reply.
 * The Markdown export is the sections between `---` rules; "Insert as cells" makes one cell per
 * section. The HTML export is the same sections with the replies rendered (by the panel's
 * sanitizing renderer) and the prompts as text.
 */

import type { JSONObject } from '@lumino/coreutils';

/** One turn of the exported branch. */
export interface IExportTurn {
  run: string | null;
  model: string;
  prompt: string;
  reply: string;
  status: string;
  /** `completed · first token 0.42 s · 12.5 tok/s · 40 tokens · $0.0400`: the reply's status line. */
  stats: string;
  /** The turn as recorded in the notebook (or as this page knows it): the JSON export's entry. */
  record: JSONObject;
}

/** The Markdown section of one turn (also one inserted cell). */
export function turnMarkdown(turn: IExportTurn): string {
  return `**You**\n\n${turn.prompt}\n\n**${turn.model}** (${turn.stats})\n\n${turn.reply}`;
}

/** The whole branch as Markdown: one section per turn, between `---` rules. */
export function branchMarkdown(turns: readonly IExportTurn[]): string {
  return turns.map(turnMarkdown).join('\n\n---\n\n') + (turns.length > 0 ? '\n' : '');
}

/** The branch as JSON: where it comes from and its turns as recorded, first turn first. */
export function branchJSON(
  notebook: string | null,
  conversation: string,
  turns: readonly IExportTurn[]
): string {
  return (
    JSON.stringify({ notebook, conversation, turns: turns.map(turn => turn.record) }, null, 1) +
    '\n'
  );
}

export function escapeHTML(text: string): string {
  return text.replace(
    /[&<>"']/g,
    c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!
  );
}

/**
 * A standalone HTML page of the branch: `replyHTML[i]` is turn i's reply, already rendered and
 * sanitized; every other text is escaped here. No script, no remote resource.
 */
export function branchHTML(
  title: string,
  turns: readonly IExportTurn[],
  replyHTML: readonly string[]
): string {
  const sections = turns.map((turn, i) =>
    [
      '<section class="turn">',
      '<h3>You</h3>',
      `<div class="prompt">${escapeHTML(turn.prompt).replace(/\n/g, '<br>')}</div>`,
      `<h3>${escapeHTML(turn.model)} <small>(${escapeHTML(turn.stats)})</small></h3>`,
      `<div class="reply">${replyHTML[i] ?? escapeHTML(turn.reply)}</div>`,
      '</section>'
    ].join('\n')
  );
  return [
    '<!DOCTYPE html>',
    '<html><head><meta charset="utf-8">',
    `<title>${escapeHTML(title)}</title>`,
    '<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.5}' +
      '.prompt{white-space:normal;background:#f3f3f3;padding:.5em}pre{background:#f6f6f6;padding:.5em;overflow:auto}' +
      'section{border-bottom:1px solid #ddd;padding-bottom:1em}</style>',
    '</head><body>',
    `<h1>${escapeHTML(title)}</h1>`,
    ...sections,
    '</body></html>',
    ''
  ].join('\n');
}

/** A file name for the branch's export: letters, digits, `-`, `_` and `.` only. */
export function exportFileName(notebook: string | null, conversation: string, ext: string): string {
  const stem = (notebook ?? 'chat')
    .split('/')
    .pop()!
    .replace(/\.ipynb$/, '');
  const safe = (text: string): string => text.replace(/[^\w.-]+/g, '-').slice(0, 60);
  return `${safe(stem)}-${safe(conversation)}.${ext}`;
}

/** What a replay's record is compared on. */
export interface IReproFields {
  response_model?: string | null;
  system_fingerprint?: string | null;
  messages_sha256?: string | null;
}

/**
 * What a replay found, in one line: whether it sent the same messages (messages_sha256) and whether
 * the provider's model or fingerprint changed.
 */
export function replayNote(original: IReproFields, replay: IReproFields): string {
  const parts: string[] = [];
  const sent = original.messages_sha256 ?? null;
  const again = replay.messages_sha256 ?? null;
  if (sent === null || again === null) {
    parts.push('messages: cannot tell (no messages_sha256)');
  } else if (sent === again) {
    parts.push(`same messages (sha256 ${sent.slice(0, 12)}… matches)`);
  } else {
    parts.push(`different messages (sha256 ${sent.slice(0, 12)}… → ${again.slice(0, 12)}…)`);
  }
  const compare = (what: string, before?: string | null, after?: string | null): void => {
    const a = before ?? null;
    const b = after ?? null;
    if (a === b) {
      parts.push(a === null ? `no ${what}` : `${what} unchanged (${a})`);
    } else {
      parts.push(`${what} changed: ${a ?? 'none'} → ${b ?? 'none'}`);
    }
  };
  compare('response model', original.response_model, replay.response_model);
  compare('fingerprint', original.system_fingerprint, replay.system_fingerprint);
  return `Replay: ${parts.join('; ')}`;
}
