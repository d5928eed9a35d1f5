/**
 * The shown branch of a conversation as Markdown cells ("Insert as cells"), and what a replay found
 * out (SPEC 11). Pure: unit tested in node.
 *
 * One turn is one Markdown section, as the widgets' `history().to_markdown()` writes it
 * (jupyter_streamchat/export): `**You**`, the prompt, `**<model>** (<status · stats · cost>)`, the
 * reply. "Export" is not made here: the server renders the files (`GET streamchat/export`, the
 * Python renderer `history()` uses), so there is one rendering of each format (download.ts).
 */

/** One turn of the shown branch, as "Insert as cells" writes it. */
export interface IExportTurn {
  model: string;
  prompt: string;
  reply: string;
  /** `completed · first token 0.42 s · 12.5 tok/s · 40 tokens · $0.0400`: the reply's status line. */
  stats: string;
}

/** The Markdown section of one turn (one inserted cell). */
export function turnMarkdown(turn: IExportTurn): string {
  return `**You**\n\n${turn.prompt}\n\n**${turn.model}** (${turn.stats})\n\n${turn.reply}`;
}

/** The file name the server gave (`attachment; filename="a-b.md"`: it sends safe characters only). */
export function attachmentName(disposition: string | null, fallback: string): string {
  const found = /filename="([^"]+)"/.exec(disposition ?? '');
  return found?.[1] ?? fallback;
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
