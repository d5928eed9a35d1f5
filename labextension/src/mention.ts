/**
 * The `@` list of the Message box (model only; contextview.ts draws it): which `@word` the caret
 * is in, which variables match it, which option is active, and what choosing one does to the
 * text. Choosing `df` completes the typed word to `@df ` (the words stay the user's: "why does
 * @df dip?" still reads as a sentence) and adds a `df` chip.
 */

/** A variable of the kernel, as kernel/_inspect.py lists it. */
export interface IVariable {
  name: string;
  type: string;
  shape: string | null;
}

/** An `@word` being typed: `start` is the index of the `@`, `end` the caret. */
export interface IMention {
  start: number;
  end: number;
  query: string;
}

// An identifier as Python reads one (letters, digits, underscore; not starting with a digit),
// after an `@` that starts the text or follows whitespace (an email address is no mention).
const MENTION_BEFORE_CARET = /(^|\s)@([\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*)?$/u;

/** The `@word` that ends at `caret` in `text`, or null. */
export function mentionAt(text: string, caret: number): IMention | null {
  const match = MENTION_BEFORE_CARET.exec(text.slice(0, caret));
  if (match === null) {
    return null;
  }
  const query = match[2] ?? '';
  return { start: caret - query.length - 1, end: caret, query };
}

/**
 * The variables whose name holds `query` (case-insensitively): names that start with it first,
 * each group in the kernel's order (sorted by name).
 */
export function filterVariables(variables: IVariable[], query: string): IVariable[] {
  const wanted = query.toLowerCase();
  const starts: IVariable[] = [];
  const holds: IVariable[] = [];
  for (const variable of variables) {
    const name = variable.name.toLowerCase();
    if (name.startsWith(wanted)) {
      starts.push(variable);
    } else if (name.includes(wanted)) {
      holds.push(variable);
    }
  }
  return [...starts, ...holds];
}

/** `text` with the mention completed to `@name ` and where the caret goes after it. */
export function completeMention(
  text: string,
  mention: IMention,
  name: string
): { text: string; caret: number } {
  const after = text.slice(mention.end);
  const spaced = /^\s/.test(after) ? `@${name}` : `@${name} `;
  return {
    text: text.slice(0, mention.start) + spaced + after,
    caret: mention.start + spaced.length
  };
}

/** What the list says instead of (or above) its options. */
export type PickerNote =
  | { kind: 'reading' }
  | { kind: 'waiting'; why: string }
  | { kind: 'error'; message: string }
  | null;

/** The open list: its mention, the variables offered, the active option. */
export class VariablePicker {
  get isOpen(): boolean {
    return this._mention !== null;
  }

  get mention(): IMention | null {
    return this._mention;
  }

  /** The variables matching the mention, in the order shown. */
  get options(): IVariable[] {
    return this._options;
  }

  /** Index of the active option (-1: none). */
  get activeIndex(): number {
    return this._active;
  }

  get active(): IVariable | null {
    return this._options[this._active] ?? null;
  }

  get note(): PickerNote {
    return this._note;
  }

  /** What the list says when there is nothing else to say ("" when options show). */
  get emptyText(): string {
    if (this._variables === null || this._options.length > 0) {
      return '';
    }
    if (this._variables.length === 0) {
      return 'The kernel has no variables yet.';
    }
    return `No variable matches @${this._mention?.query ?? ''}.`;
  }

  /** Follow the text: open (or re-filter) at an `@word`, close anywhere else. */
  follow(text: string, caret: number): void {
    const mention = mentionAt(text, caret);
    const query = this._mention?.query;
    this._mention = mention;
    if (mention === null) {
      this._options = [];
      this._active = -1;
    } else if (mention.query !== query) {
      this._filter();
    }
  }

  close(): void {
    this._mention = null;
    this._options = [];
    this._active = -1;
  }

  /** The kernel's variables arrived (or null: they are being read again). */
  setVariables(variables: IVariable[] | null): void {
    this._variables = variables;
    this._note = variables === null ? { kind: 'reading' } : null;
    this._filter();
  }

  setNote(note: PickerNote): void {
    this._note = note;
  }

  /** Move the active option by `delta`, wrapping at both ends. */
  move(delta: number): void {
    const count = this._options.length;
    if (count > 0) {
      this._active = (((this._active + delta) % count) + count) % count;
    }
  }

  /** Make the option at `index` the active one. */
  point(index: number): void {
    if (index >= 0 && index < this._options.length) {
      this._active = index;
    }
  }

  private _filter(): void {
    const before = this.active?.name;
    this._options =
      this._mention === null || this._variables === null
        ? []
        : filterVariables(this._variables, this._mention.query);
    const kept = this._options.findIndex(v => v.name === before);
    this._active = kept >= 0 ? kept : this._options.length > 0 ? 0 : -1;
  }

  private _mention: IMention | null = null;
  private _variables: IVariable[] | null = null;
  private _options: IVariable[] = [];
  private _active = -1;
  private _note: PickerNote = null;
}
