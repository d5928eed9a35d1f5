/**
 * The panel's side of the message's context: the active notebook's chips (one ContextModel per
 * notebook), the `@` list, "Include active cell" and "Include outputs", kept in line with the
 * notebook's kernel. Variables and their items come from the kernel (kernelinspect.ts), asked
 * when the list opens, when chips change, and again after a cell ran or the kernel restarted;
 * a busy kernel is waited for, never queued behind.
 */

import type { ISessionContext } from '@jupyterlab/apputils';
import type { KernelMessage } from '@jupyterlab/services';
import type { NotebookPanel } from '@jupyterlab/notebook';

import { Composer } from './composer';
import { ContextModel, IChip, IItemAnswer } from './contextmodel';
import { ChipsView, ContextView, VariableList } from './contextview';
import { askKernel, InspectError, pythonList } from './kernelinspect';
import { completeMention, IVariable, VariablePicker } from './mention';
import { own } from './metadata';
import { activeCellImages, activeCellName, cellContext } from './notebook';
import { IWireItem } from './tokens';
import { isObject, messageOf } from './util';

/** What the context asks of the panel. */
export interface IContextHooks {
  /** A one-line message in the panel's status line ('' clears it). */
  status(text: string, error: boolean): void;
  /** The cell's chip was removed: "Include active cell" turns off. */
  excludeCell(): void;
  /** The message's text changed (Send follows). */
  edited(): void;
}

export class PanelContext {
  constructor(
    private readonly _composer: Composer,
    private readonly _hooks: IContextHooks
  ) {
    this._chips = new ChipsView(chip => this._remove(chip));
    this._view = new ContextView();
    this._list = new VariableList(variable => this._choose(variable));
    _composer.contextHost.append(this._chips.node, this._view.node);
    _composer.mentionHost.append(this._list.node);
    const textarea = _composer.textarea;
    textarea.setAttribute('aria-autocomplete', 'list');
    textarea.setAttribute('aria-controls', this._list.listbox.id);
    textarea.setAttribute('aria-expanded', 'false');
    this._model = this._modelOf(null);
  }

  /** The chips of `notebook`'s next message (each open notebook keeps its own). */
  private _modelOf(notebook: NotebookPanel | null): ContextModel {
    let model = this._models.get(notebook);
    if (model === undefined) {
      const made = new ContextModel();
      made.onChange = () => made === this._model && this._render();
      this._models.set(notebook, made);
      notebook?.disposed.connect(() => this._models.delete(notebook));
      model = made;
    }
    return model;
  }

  /** The chips of the active notebook's next message. */
  get model(): ContextModel {
    return this._model;
  }

  /** Show (and follow the kernel of) the active notebook's context. */
  follow(notebook: NotebookPanel | null): void {
    if (notebook === this._notebook) {
      return;
    }
    this._unwatch();
    this._notebook = notebook;
    this._model = this._modelOf(notebook);
    this._watch(notebook?.sessionContext ?? null);
    this._picker.close();
    this._renderList();
    this._render();
    this._refreshItems(); // a cell may have run while another notebook was shown
  }

  /** Keep the cell's chip in line with "Include active cell" and the active cell (cheap). */
  syncCell(include: boolean): void {
    const name = include ? activeCellName(this._notebook) : null;
    const text = name === null ? '' : cellContext(this._notebook);
    if (name === null || text === '') {
      this._model.remove('cell');
    } else {
      this._model.setCell(name, text);
    }
  }

  /** "Include outputs": the active cell's image outputs become chips. */
  includeOutputs(): void {
    const name = activeCellName(this._notebook);
    if (name === null) {
      this._hooks.status('Open a notebook and pick a cell to include its outputs.', true);
      return;
    }
    const images = activeCellImages(this._notebook);
    if (images.length === 0) {
      this._hooks.status(`${name} has no image outputs (PNG, JPEG, GIF or WebP).`, true);
      return;
    }
    const added = this._model.addImages(images);
    this._hooks.status(added === 0 ? `The images of ${name} are included already.` : '', false);
  }

  /** The items to send, or the one line that says why not yet. */
  sendable(): { items: IWireItem[] } | { error: string } {
    return this._model.sendable();
  }

  // ----- the `@` list -------------------------------------------------------------------------

  /** A key in the Message box: the list's keys while it is open (true: taken). */
  keydown(event: KeyboardEvent): boolean {
    const picker = this._picker;
    if (!picker.isOpen || event.isComposing) {
      return false;
    }
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      picker.move(event.key === 'ArrowDown' ? 1 : -1);
    } else if ((event.key === 'Enter' || event.key === 'Tab') && !event.shiftKey) {
      const chosen = picker.active;
      if (chosen === null) {
        picker.close(); // nothing to choose: Enter sends, Tab moves on
        this._renderList();
        return false;
      }
      this._choose(chosen);
    } else if (event.key === 'Escape') {
      picker.close();
      event.stopPropagation(); // the list closes; a streaming reply goes on
    } else {
      return false;
    }
    event.preventDefault();
    this._renderList();
    return true;
  }

  /** The text or the caret changed: open, filter or close the list. */
  caretMoved(): void {
    const textarea = this._composer.textarea;
    const picker = this._picker;
    const wasOpen = picker.isOpen;
    if (textarea.selectionStart !== textarea.selectionEnd) {
      picker.close();
    } else {
      picker.follow(textarea.value, textarea.selectionStart);
    }
    if (picker.isOpen && !wasOpen) {
      void this._listVariables();
    }
    this._renderList();
  }

  blurred(): void {
    this._picker.close();
    this._renderList();
  }

  private _choose(variable: IVariable): void {
    const mention = this._picker.mention;
    if (mention === null) {
      return;
    }
    const textarea = this._composer.textarea;
    const completed = completeMention(textarea.value, mention, variable.name);
    textarea.value = completed.text;
    textarea.setSelectionRange(completed.caret, completed.caret);
    this._picker.close();
    this._renderList();
    this._hooks.edited();
    if (this._model.addVariable(variable.name)) {
      this._refreshItems();
    }
  }

  private async _listVariables(): Promise<void> {
    const session = this._session;
    const picker = this._picker;
    if (session === null) {
      picker.setNote({
        kind: 'error',
        message: 'Open a notebook: its kernel’s variables show here.'
      });
      return;
    }
    if (this._listing) {
      return; // the question out there answers this opening too
    }
    this._listing = true;
    picker.setVariables(null);
    try {
      const answer = await askKernel(session, 'variables()', why => {
        picker.setNote(why === null ? { kind: 'reading' } : { kind: 'waiting', why });
        this._renderList();
      });
      if (session === this._session) {
        picker.setVariables(variablesOf(answer));
      }
    } catch (error) {
      picker.setNote({ kind: 'error', message: reasonOf(error) });
    } finally {
      this._listing = false;
    }
    this._renderList();
  }

  // ----- the kernel's items -------------------------------------------------------------------

  /** Ask the kernel for the variable chips' items (once at a time per notebook; again if asked meanwhile). */
  private _refreshItems(): void {
    const model = this._model;
    const session = this._session;
    if (model.variableNames.length === 0) {
      return;
    }
    if (session === null) {
      model.failVariables('no notebook kernel to read it from');
      return;
    }
    if (this._asking.has(model)) {
      this._again.add(model);
      return;
    }
    this._asking.add(model);
    void (async () => {
      try {
        const names = model.variableNames;
        const answer = await askKernel(session, `items(${pythonList(names)})`, why =>
          why === null ? model.readVariables() : model.waitVariables(why)
        );
        model.applyItems(itemsOf(answer));
      } catch (error) {
        model.failVariables(reasonOf(error));
      } finally {
        this._asking.delete(model);
        if (this._again.delete(model) && model === this._model) {
          this._refreshItems();
        }
      }
    })();
  }

  private _remove(chip: IChip): void {
    this._model.remove(chip.key);
    if (chip.source === 'cell') {
      this._hooks.excludeCell();
    }
    this._composer.focus();
  }

  /** Follow the kernel: a cell that ran (any front end's) or a restart makes the items stale. */
  private _watch(session: ISessionContext | null): void {
    this._session = session;
    if (session === null) {
      return;
    }
    session.iopubMessage.connect(this._onIopub, this);
    session.statusChanged.connect(this._onStatus, this);
    session.kernelChanged.connect(this._onKernel, this);
  }

  private _unwatch(): void {
    const session = this._session;
    if (session !== null && !session.isDisposed) {
      session.iopubMessage.disconnect(this._onIopub, this);
      session.statusChanged.disconnect(this._onStatus, this);
      session.kernelChanged.disconnect(this._onKernel, this);
    }
    this._session = null;
    this._stale = false;
  }

  private _onIopub(_: unknown, msg: KernelMessage.IMessage): void {
    // Silent questions (ours) publish no execute_input: only a user's cell does.
    if (msg.header.msg_type === 'execute_input') {
      this._stale = true;
    }
  }

  private _onStatus(_: unknown, status: string): void {
    if (status === 'restarting' || status === 'autorestarting') {
      this._stale = true;
      this._model.waitVariables('kernel restarting');
    } else if (status === 'dead') {
      this._model.failVariables('the kernel is dead: restart it');
    } else if (status === 'idle' && this._stale) {
      this._stale = false;
      this._refreshItems();
    }
  }

  private _onKernel(): void {
    this._stale = true;
  }

  private _render(): void {
    this._chips.show(this._model);
    this._view.show(this._model);
  }

  private _renderList(): void {
    this._list.show(this._picker);
    const textarea = this._composer.textarea;
    textarea.setAttribute('aria-expanded', String(this._picker.isOpen));
    if (this._list.activeId) {
      textarea.setAttribute('aria-activedescendant', this._list.activeId);
    } else {
      textarea.removeAttribute('aria-activedescendant');
    }
  }

  private _notebook: NotebookPanel | null = null;
  private _session: ISessionContext | null = null;
  private _models = new Map<NotebookPanel | null, ContextModel>();
  private _model: ContextModel;
  private _picker = new VariablePicker();
  private _chips: ChipsView;
  private _view: ContextView;
  private _list: VariableList;
  /** A variables question is out. */
  private _listing = false;
  /** Models whose items are being asked for, and those to ask again after. */
  private _asking = new Set<ContextModel>();
  private _again = new Set<ContextModel>();
  /** A cell ran (or the kernel changed) since the items were read. */
  private _stale = false;
}

function reasonOf(error: unknown): string {
  return error instanceof InspectError
    ? error.message
    : `could not ask the kernel: ${messageOf(error)}`;
}

/** `variables()`'s answer (untrusted JSON: malformed entries are left out). */
export function variablesOf(answer: unknown): IVariable[] {
  const listed = own(answer, 'variables');
  return (Array.isArray(listed) ? listed : []).filter(isObject).flatMap(entry => {
    const { name, type, shape } = entry;
    return typeof name === 'string' && typeof type === 'string'
      ? [{ name, type, shape: typeof shape === 'string' ? shape : null }]
      : [];
  });
}

/** `items()`'s answer. */
export function itemsOf(answer: unknown): IItemAnswer[] {
  const listed = own(answer, 'items');
  return (Array.isArray(listed) ? listed : []).filter(isObject).flatMap((entry): IItemAnswer[] => {
    const { name, item, error } = entry;
    if (typeof name !== 'string') {
      return [];
    }
    return isObject(item)
      ? [{ name, item: item as unknown as IWireItem }]
      : [{ name, error: typeof error === 'string' ? error : 'the kernel gave no item' }];
  });
}
