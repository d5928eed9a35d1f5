/**
 * The views of the next message's context (contextmodel.ts, mention.ts): the chips (each with
 * its "Remove <name>" button), the Context view (a disclosure showing exactly what will be sent,
 * item by item, with token estimates), and the `@` list of variables (role listbox, "Variables").
 */

import { button, element } from './dom';
import { ContextModel, IChip } from './contextmodel';
import { IVariable, VariablePicker } from './mention';

const KIND_OF_SOURCE: Record<string, string> = { cell: 'cell', image: 'image' };

/** "about 1,234 tokens" (an estimate: never a bare number). */
export function aboutTokens(tokens: number): string {
  return `about ${tokens.toLocaleString('en-US')} token${tokens === 1 ? '' : 's'}`;
}

/** What a chip says about itself after its name: its kind, or why it is not ready. */
export function chipNote(chip: IChip): string {
  switch (chip.state) {
    case 'reading':
      return 'reading…';
    case 'waiting':
      return chip.message;
    case 'error':
      return chip.message;
    default:
      return chip.item?.kind ?? KIND_OF_SOURCE[chip.source] ?? '';
  }
}

/** The chips, one per item; "Remove <name>" takes one out. */
export class ChipsView {
  readonly node: HTMLElement;

  constructor(private readonly _remove: (chip: IChip) => void) {
    this.node = element('div', 'jp-StreamChat-chips');
    this.node.setAttribute('role', 'list');
    this.node.setAttribute('aria-label', 'Included with the message');
    this.node.hidden = true;
  }

  show(model: ContextModel): void {
    this.node.hidden = model.isEmpty;
    this.node.replaceChildren(...model.chips.map(chip => this._chip(chip)));
  }

  private _chip(chip: IChip): HTMLElement {
    const node = element('span', 'jp-StreamChat-chip');
    node.setAttribute('role', 'listitem');
    node.dataset.state = chip.state;
    node.dataset.source = chip.source;
    const note = chipNote(chip);
    const noteNode = element('span', 'jp-StreamChat-chipNote', note);
    if (chip.state === 'error') {
      noteNode.setAttribute('role', 'alert');
    }
    const remove = button('×', `Remove ${chip.name} from the message`, () => this._remove(chip));
    remove.classList.add('jp-StreamChat-chipRemove');
    remove.setAttribute('aria-label', `Remove ${chip.name}`);
    node.title = `${chip.name}: ${note}`;
    node.append(element('span', 'jp-StreamChat-chipName', chip.name), noteNode, remove);
    return node;
  }
}

/** The Context view: each item as it will be sent, its estimate, and the total. */
export class ContextView {
  readonly node: HTMLDetailsElement;

  constructor() {
    this.node = document.createElement('details');
    this.node.className = 'jp-StreamChat-contextView';
    this.node.setAttribute('aria-label', 'Context');
    this._summary = element('summary', 'jp-StreamChat-contextSummary');
    this._items = element('div', 'jp-StreamChat-contextItems');
    this.node.append(this._summary, this._items);
    this.node.hidden = true;
  }

  show(model: ContextModel): void {
    const wasEmpty = this.node.hidden;
    this.node.hidden = model.isEmpty;
    if (model.isEmpty) {
      this._items.replaceChildren();
      return;
    }
    if (wasEmpty) {
      this.node.open = true; // what will be sent shows until the user folds it
    }
    const chips = model.chips;
    const total = model.totalTokens();
    const notReady = chips.filter(c => c.state !== 'ready').length;
    this._summary.textContent =
      `Context: ${chips.length} item${chips.length === 1 ? '' : 's'}, ${aboutTokens(total)}` +
      (notReady > 0 ? ` (${notReady} not ready)` : '');
    this.node.dataset.tokens = String(total);
    this._items.replaceChildren(...chips.map(chip => this._item(model, chip)));
  }

  private _item(model: ContextModel, chip: IChip): HTMLElement {
    const node = element('section', 'jp-StreamChat-contextItem');
    node.dataset.state = chip.state;
    node.dataset.name = chip.name;
    node.setAttribute('aria-label', chip.name);
    const tokens = model.tokens(chip);
    const head = element('div', 'jp-StreamChat-contextItemHead');
    head.append(
      element('span', 'jp-StreamChat-contextItemName', chip.name),
      element('span', 'jp-StreamChat-contextItemKind', chipNote(chip))
    );
    if (tokens !== null) {
      const estimate = element('span', 'jp-StreamChat-contextItemTokens', aboutTokens(tokens));
      estimate.dataset.tokens = String(tokens);
      head.appendChild(estimate);
    }
    node.appendChild(head);
    const item = chip.item;
    if (chip.image !== null && item?.data !== undefined) {
      const figure = element('div', 'jp-StreamChat-contextImage');
      const image = document.createElement('img');
      // The notebook's own bytes (a data: URL): nothing is fetched.
      image.src = `data:${chip.image.mime};base64,${item.data}`;
      image.alt = chip.name;
      const size = `${chip.image.width}×${chip.image.height} ${chip.image.mime.split('/')[1].toUpperCase()}, ${kilobytes(chip.image.bytes)}`;
      figure.append(image, element('span', 'jp-StreamChat-contextImageSize', size));
      node.appendChild(figure);
    }
    if (item?.text) {
      node.appendChild(element('pre', 'jp-StreamChat-contextText', item.text));
    }
    return node;
  }

  private _summary: HTMLElement;
  private _items: HTMLElement;
}

function kilobytes(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(1)} KB`;
}

/** The `@` list: the variables matching the typed word, the active one highlighted. */
export class VariableList {
  readonly node: HTMLElement;
  /** The listbox (the Message box points at it with aria-controls). */
  readonly listbox: HTMLElement;

  constructor(private readonly _choose: (variable: IVariable) => void) {
    this.node = element('div', 'jp-StreamChat-mentions');
    this._note = element('div', 'jp-StreamChat-mentionsNote');
    this._note.setAttribute('role', 'status');
    this.listbox = element('ul', 'jp-StreamChat-variables');
    this.listbox.id = `jp-StreamChat-variables-${++VariableList._count}`;
    this.listbox.setAttribute('role', 'listbox');
    this.listbox.setAttribute('aria-label', 'Variables');
    this.node.append(this._note, this.listbox);
    this.node.hidden = true;
    // Keep the focus (and the caret) in the Message box while an option is clicked.
    this.node.addEventListener('mousedown', event => event.preventDefault());
  }

  /** Id of the active option's element ('' for none), for aria-activedescendant. */
  get activeId(): string {
    return this._activeId;
  }

  show(picker: VariablePicker): void {
    this.node.hidden = !picker.isOpen;
    this._activeId = '';
    if (!picker.isOpen) {
      this.listbox.replaceChildren();
      return;
    }
    const note = picker.note;
    const text =
      note === null
        ? picker.emptyText
        : note.kind === 'reading'
          ? 'Reading the kernel’s variables…'
          : note.kind === 'waiting'
            ? `${note.why}: the list follows when it is idle`
            : note.message;
    this._note.textContent = text;
    this._note.hidden = text === '';
    this._note.dataset.kind = note?.kind ?? 'empty';
    this._note.classList.toggle('jp-StreamChat-error', note?.kind === 'error');
    this.listbox.replaceChildren(
      ...picker.options.map((variable, index) => {
        const option = element('li', 'jp-StreamChat-variable');
        option.id = `${this.listbox.id}-${index}`;
        option.setAttribute('role', 'option');
        option.setAttribute('aria-label', variable.name);
        const active = index === picker.activeIndex;
        option.setAttribute('aria-selected', String(active));
        if (active) {
          this._activeId = option.id;
        }
        option.append(
          element('span', 'jp-StreamChat-variableName', variable.name),
          element('span', 'jp-StreamChat-variableType', variable.type),
          element('span', 'jp-StreamChat-variableShape', variable.shape ?? '')
        );
        option.addEventListener('click', () => this._choose(variable));
        return option;
      })
    );
    this.listbox.querySelector('[aria-selected="true"]')?.scrollIntoView?.({ block: 'nearest' });
  }

  private static _count = 0;
  private _note: HTMLElement;
  private _activeId = '';
}
