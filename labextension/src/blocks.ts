/**
 * Split a streaming Markdown reply into finished blocks and the open tail.
 *
 * A long reply must not be re-rendered whole for every token: a finished block is rendered once,
 * and only the open tail is rendered again as text arrives. A block is finished when what follows
 * cannot change how it renders:
 *
 * - a fenced code block, once its closing fence arrived;
 * - the text before a fence opener (a fence interrupts any paragraph);
 * - the text before a line that starts at column 0 after a blank line (as soon as its first
 *   character arrives). An indented line after a blank line may continue a list item, so it does
 *   not end the block.
 *
 * A fence indented by 1-3 spaces after content of the open block may belong to a list item (LLMs
 * write `1. Install:\n\n   ```bash`): it neither ends the block before it nor is sealed on its
 * own, so the list item keeps its code; the open tail then shows it as Markdown.
 *
 * The kernel widgets split with the same rule (`jupyter_streamchat/kernel/_blocks.py`); the
 * fixtures in `tests/parity/markdown` hold both to it.
 *
 * Pure: no DOM, unit tested in node (labextension/test).
 */

/** The open part of the reply: Markdown, or the inside of a code fence still being written. */
export interface ITail {
  /** Markdown source of the open tail (from the end of the last finished block). */
  source: string;
  /**
   * Set while the tail is an unclosed code fence of its own (not one nested in the open block):
   * its info string and the code so far.
   */
  fence: { info: string; code: string } | null;
}

/** What changed since the last `update`. */
export interface ISplit {
  /** Blocks finished by this update, in order; each is rendered once. */
  sealed: string[];
  tail: ITail;
}

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})(.*)$/;

interface IOpenFence {
  marker: string; // the opening run of ` or ~
  info: string;
  codeStart: number; // offset of the first code line
  indent: string; // the opener's indentation
  /** Part of the open block (maybe of a list item), not a block of its own. */
  nested: boolean;
}

export class MarkdownBlocks {
  /**
   * Feed the whole reply so far (replies only grow; a text that does not extend the previous
   * one starts over, and `reset` is true in the result).
   */
  update(text: string): ISplit & { reset: boolean } {
    let reset = false;
    // Replies only grow, so a full prefix comparison (O(length) per update) is not needed: the
    // scanned length and its last characters tell a replaced text apart.
    const from = Math.max(0, this._scanned - 64);
    if (
      text.length < this._scanned ||
      text.slice(from, this._scanned) !== this._text.slice(from, this._scanned)
    ) {
      this._clear();
      reset = true;
    }
    this._text = text;
    const sealed: string[] = [];
    for (;;) {
      const newline = text.indexOf('\n', this._scanned);
      if (newline === -1) {
        break;
      }
      this._line(this._scanned, newline + 1, sealed);
      this._scanned = newline + 1;
    }
    // A line begun at column 0 after a blank line ends the block before it, whatever it becomes.
    if (this._afterBlank && this._scanned < text.length && !/\s/.test(text[this._scanned])) {
      this._seal(this._scanned, sealed);
      this._afterBlank = false;
    }
    return { sealed, tail: this._tail(), reset };
  }

  /**
   * The reply is over: everything left becomes a finished block (an open fence is closed).
   * With `reset`, `sealed` holds every block of the text and earlier blocks must be dropped.
   */
  finish(text: string): { sealed: string[]; reset: boolean } {
    const { sealed, reset } = this.update(text);
    // The end of the text ends its last line: a closing fence without a newline closes the fence
    // (else a second closing fence would be added below, opening an empty code block).
    if (this._scanned < text.length) {
      this._line(this._scanned, text.length, sealed);
    }
    const rest = text.slice(this._blockStart);
    if (rest.trim() !== '') {
      const newline = rest.endsWith('\n') ? '' : '\n';
      const fence = this._fence;
      sealed.push(fence === null ? rest : `${rest}${newline}${fence.indent}${fence.marker}\n`);
    }
    this._blockStart = text.length;
    this._scanned = text.length;
    this._fence = null;
    return { sealed, reset };
  }

  private _line(start: number, end: number, sealed: string[]): void {
    const line = this._text.slice(start, end).replace(/\r?\n$/, '');
    if (this._fence !== null) {
      if (closesFence(line, this._fence.marker)) {
        if (!this._fence.nested) {
          this._seal(end, sealed);
        }
        this._fence = null;
      }
      return;
    }
    const opener = FENCE_OPEN.exec(line);
    if (opener !== null && !(opener[1][0] === '`' && opener[2].includes('`'))) {
      const indent = line.slice(0, line.length - line.trimStart().length);
      const nested = indent !== '' && this._text.slice(this._blockStart, start).trim() !== '';
      if (!nested) {
        this._seal(start, sealed);
      }
      this._fence = { marker: opener[1], info: opener[2].trim(), codeStart: end, indent, nested };
      this._afterBlank = false;
      return;
    }
    if (line.trim() === '') {
      this._afterBlank = this._text.slice(this._blockStart, start).trim() !== '';
      return;
    }
    if (this._afterBlank && !/^\s/.test(line)) {
      this._seal(start, sealed);
    }
    this._afterBlank = false;
  }

  /** Finish the block that ends at `end` (if it has any content). */
  private _seal(end: number, sealed: string[]): void {
    const block = this._text.slice(this._blockStart, end);
    if (block.trim() !== '') {
      sealed.push(block);
    }
    this._blockStart = end;
  }

  private _tail(): ITail {
    const source = this._text.slice(this._blockStart);
    if (this._fence === null || this._fence.nested) {
      return { source, fence: null };
    }
    return {
      source,
      fence: { info: this._fence.info, code: this._text.slice(this._fence.codeStart) }
    };
  }

  private _clear(): void {
    this._text = '';
    this._scanned = 0;
    this._blockStart = 0;
    this._fence = null;
    this._afterBlank = false;
  }

  private _text = '';
  /** Offset of the first line not scanned yet. */
  private _scanned = 0;
  /** Offset where the open block starts. */
  private _blockStart = 0;
  private _fence: IOpenFence | null = null;
  /** The last scanned line was blank, after some content of the open block. */
  private _afterBlank = false;
}

/** CommonMark: a closing fence is the same character, at least as long, nothing but spaces after. */
function closesFence(line: string, marker: string): boolean {
  const match = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
  return match !== null && match[1][0] === marker[0] && match[1].length >= marker.length;
}

/**
 * A finished block that is one fenced code block: its info string and its code as CommonMark
 * reads it (up to the opener's indentation removed from each line); null for any other block.
 */
export function fencedCode(block: string): { info: string; code: string } | null {
  const lines = block.split(/\r?\n/);
  if (lines[lines.length - 1] === '') {
    lines.pop();
  }
  const opener = FENCE_OPEN.exec(lines[0] ?? '');
  const last = lines.length - 1;
  if (
    opener === null ||
    (opener[1][0] === '`' && opener[2].includes('`')) ||
    last < 1 ||
    !closesFence(lines[last], opener[1])
  ) {
    return null;
  }
  for (let i = 1; i < last; i++) {
    if (closesFence(lines[i], opener[1])) {
      return null; // the fence closes earlier: more than one block
    }
  }
  const indent = lines[0].length - lines[0].trimStart().length;
  const openerIndent = new RegExp(`^ {0,${indent}}`);
  const code = lines
    .slice(1, last)
    .map(line => line.replace(openerIndent, ''))
    .join('\n');
  return { info: opener[2].trim(), code };
}
