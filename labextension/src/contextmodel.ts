/**
 * What goes with the next message besides its words (SPEC 10), as chips: kernel variables picked
 * with `@` (their items are built by the kernel, kernel/_inspect.py), the active cell ("Include
 * active cell") and the active cell's image outputs ("Include outputs"). Model only: the views
 * (contextview.ts) draw it, the panel (panelcontext.ts) feeds it.
 *
 * Nothing half-sent: the message goes only when every chip has its item; a chip whose variable
 * is gone, or whose kernel is dead, says so in one line and holds Send back until it is removed.
 */

import { IImageInfo, sniffImage } from './imageinfo';
import { itemTokens, IWireItem } from './tokens';

export type ChipSource = 'variable' | 'cell' | 'image';

/** reading: asked of the kernel; waiting: the kernel is busy or restarting (it is asked again). */
export type ChipState = 'reading' | 'waiting' | 'ready' | 'error';

export interface IChip {
  /** Unique among the chips: `variable:df`, `cell`, `image:<cell id>:<output>`. */
  key: string;
  /** The item's name, and the chip's: its button is "Remove <name>". */
  name: string;
  source: ChipSource;
  state: ChipState;
  /** One line: why it waits, or what is wrong. */
  message: string;
  /** What will be sent, once ready. */
  item: IWireItem | null;
  /** An image's facts, read from its bytes. */
  image: IImageInfo | null;
}

/** One entry of `kernel/_inspect.py`'s `items()` answer. */
export interface IItemAnswer {
  name: string;
  item?: IWireItem;
  error?: string;
}

/** An image output of a cell. */
export interface IOutputImage {
  /** Where it is: the cell's id and the output's index, so the same output is added once. */
  key: string;
  name: string;
  mime: string;
  /** base64 (notebooks may break it into lines). */
  data: string;
}

/** The chips of the next message. */
export class ContextModel {
  /** Called after every change. */
  onChange: (() => void) | null = null;

  get chips(): readonly IChip[] {
    return this._chips;
  }

  get isEmpty(): boolean {
    return this._chips.length === 0;
  }

  /** Names of the variables whose items the kernel must build. */
  get variableNames(): string[] {
    return this._chips.filter(c => c.source === 'variable').map(c => c.name);
  }

  has(key: string): boolean {
    return this._chips.some(c => c.key === key);
  }

  /** Add a variable's chip (its item is read from the kernel next); false if it is there already. */
  addVariable(name: string): boolean {
    const key = `variable:${name}`;
    if (this.has(key)) {
      return false;
    }
    this._chips.push(chip(key, name, 'variable', 'reading'));
    this._changed();
    return true;
  }

  /** The active cell's chip: its item follows the active cell (null: not included). */
  setCell(name: string, text: string): void {
    const item: IWireItem = { kind: 'cell', name, text };
    const existing = this._chips.find(c => c.key === 'cell');
    if (existing === undefined) {
      this._chips.push({ ...chip('cell', name, 'cell', 'ready'), item });
      this._changed();
    } else if (existing.name !== name || existing.item?.text !== text) {
      existing.name = name;
      existing.item = item;
      existing.state = 'ready';
      existing.message = '';
      this._changed();
    }
  }

  /** Add image outputs (again: an output already here is left as it is); how many were added. */
  addImages(images: IOutputImage[]): number {
    let added = 0;
    for (const output of images) {
      const key = `image:${output.key}`;
      if (this.has(key)) {
        continue;
      }
      const data = output.data.replace(/\s+/g, '');
      const info = sniffImage(data);
      const entry = chip(key, output.name, 'image', info === null ? 'error' : 'ready');
      if (info === null) {
        entry.message = `${output.name} is not a PNG, JPEG, GIF or WebP image`;
      } else {
        entry.image = info;
        entry.item = {
          kind: 'image',
          name: output.name,
          text: `${output.name}: ${info.width}×${info.height} ${info.mime.split('/')[1].toUpperCase()}`,
          image: { mime: info.mime },
          data
        };
      }
      this._chips.push(entry);
      added++;
    }
    if (added > 0) {
      this._changed();
    }
    return added;
  }

  remove(key: string): void {
    const before = this._chips.length;
    this._chips = this._chips.filter(c => c.key !== key);
    if (this._chips.length !== before) {
      this._changed();
    }
  }

  /** Every variable chip waits (the kernel is busy or restarting: `why` says which). */
  waitVariables(why: string): void {
    this._setVariables(c => {
      c.state = 'waiting';
      c.message = why;
    });
  }

  /** The kernel is asked now: the chips that waited for it are being read. */
  readVariables(): void {
    if (this._chips.some(c => c.source === 'variable' && c.state === 'waiting')) {
      this._setVariables(c => {
        if (c.state === 'waiting') {
          c.state = 'reading';
          c.message = '';
        }
      });
    }
  }

  /** Every variable chip failed for one reason (no kernel, a dead kernel, no package in it). */
  failVariables(message: string): void {
    this._setVariables(c => {
      c.state = 'error';
      c.message = message;
      c.item = null;
    });
  }

  /** The kernel's answer for the variable chips: each gets its item or its one-line error. */
  applyItems(answers: IItemAnswer[]): void {
    const byName = new Map(answers.map(a => [a.name, a]));
    this._setVariables(c => {
      const answer = byName.get(c.name);
      if (answer?.item !== undefined) {
        c.state = 'ready';
        c.message = '';
        c.item = answer.item;
        c.image = answer.item.data === undefined ? null : sniffImage(answer.item.data);
      } else if (answer !== undefined) {
        c.state = 'error';
        c.message = answer.error ?? 'the kernel gave no item';
        c.item = null;
      }
      // (no answer: the chip was added after the question; the next one asks for it)
    });
  }

  /** The estimate of one chip's item (null until it has one). */
  tokens(chip: IChip): number | null {
    return chip.item === null ? null : itemTokens(chip.item);
  }

  /** The estimate of every item that will be sent. */
  totalTokens(): number {
    return this._chips.reduce((sum, c) => sum + (this.tokens(c) ?? 0), 0);
  }

  /** The items to send, or the one line that says why the message cannot go yet. */
  sendable(): { items: IWireItem[] } | { error: string } {
    const wrong = this._chips.find(c => c.state === 'error');
    if (wrong !== undefined) {
      return { error: `Not sent: ${wrong.message}. Remove "${wrong.name}" to send without it.` };
    }
    const pending = this._chips.find(c => c.state !== 'ready' || c.item === null);
    if (pending !== undefined) {
      const why = pending.state === 'waiting' ? pending.message : 'reading it from the kernel';
      return { error: `Not sent yet: "${pending.name}" is not ready (${why}).` };
    }
    return { items: this._chips.map(c => c.item as IWireItem) };
  }

  /** After a message went: the picked variables and images go; the cell stays while included. */
  clearSent(): void {
    const kept = this._chips.filter(c => c.source === 'cell');
    if (kept.length !== this._chips.length) {
      this._chips = kept;
      this._changed();
    }
  }

  private _setVariables(update: (chip: IChip) => void): void {
    const variables = this._chips.filter(c => c.source === 'variable');
    if (variables.length > 0) {
      variables.forEach(update);
      this._changed();
    }
  }

  private _changed(): void {
    this.onChange?.();
  }

  private _chips: IChip[] = [];
}

function chip(key: string, name: string, source: ChipSource, state: ChipState): IChip {
  return { key, name, source, state, message: '', item: null, image: null };
}
