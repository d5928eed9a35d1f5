/**
 * One turn of the chat thread as the user sees it (SPEC 11): the prompt with "Edit", what was sent
 * with it, the reply, and under the reply its alternatives ("Previous alternative", "2 / 3", "Next
 * alternative"), "Regenerate" and "Replay". The chat (chat.ts) decides what the buttons do.
 */

import { button, element } from './dom';
import { ReplyView } from './reply';
import { ISentItem, sentContextNodes } from './sentcontext';

/** What the turn's buttons ask the chat for. */
export interface ITurnActions {
  /** Send `prompt` as a new branch from this turn's parent. */
  edit(prompt: string): void;
  regenerate(): void;
  replay(): void;
  /** Show the alternative `step` (-1, +1) away from this one. */
  alternative(step: number): void;
}

export class TurnView {
  readonly node: HTMLElement;

  constructor(
    private readonly _prompt: string,
    context: ISentItem[],
    readonly reply: ReplyView,
    private readonly _actions: ITurnActions
  ) {
    this.node = element('div', 'jp-StreamChat-turn');
    // `.jp-StreamChat-prompt` holds the prompt's text and nothing else (outside tests read it).
    this._promptNode = element('div', 'jp-StreamChat-promptRow');
    this._promptText = element('div', 'jp-StreamChat-prompt', _prompt);
    this._edit = button('Edit', 'Edit this prompt and send it as a new branch from here', () =>
      this._startEdit()
    );
    this._edit.classList.add('jp-StreamChat-editButton');
    this._promptNode.append(this._promptText, this._edit);
    if (_prompt) {
      this.node.appendChild(this._promptNode);
    }

    this._previous = button('‹', 'Show the previous alternative', () => _actions.alternative(-1));
    this._previous.setAttribute('aria-label', 'Previous alternative');
    this._position = element('span', 'jp-StreamChat-position');
    this._next = button('›', 'Show the next alternative', () => _actions.alternative(1));
    this._next.setAttribute('aria-label', 'Next alternative');
    this._nav = element('span', 'jp-StreamChat-alternatives');
    this._nav.append(this._previous, this._position, this._next);
    this._nav.hidden = true;
    this._regenerate = button(
      'Regenerate',
      'Ask again: the same prompt and history, with the current model and parameters',
      () => _actions.regenerate()
    );
    this._replay = button(
      'Replay',
      'Run this turn again with its recorded model, parameters and history, as a new alternative',
      () => _actions.replay()
    );
    this._note = element('div', 'jp-StreamChat-replayNote');
    this._note.setAttribute('role', 'status');
    this._note.hidden = true;
    this._params = element('span', 'jp-StreamChat-turnParams');
    const footer = element('div', 'jp-StreamChat-turnActions');
    footer.append(this._nav, this._regenerate, this._replay, this._params);
    this.node.append(...sentContextNodes(context), reply.node, this._note, footer);
  }

  /** Where this turn stands among its alternatives (the arrows show when there are several). */
  setAlternatives(index: number, count: number): void {
    this._nav.hidden = count < 2;
    this._position.textContent = `${index + 1} / ${count}`;
    this._position.setAttribute('aria-label', `Alternative ${index + 1} of ${count}`);
    this._previous.disabled = index <= 0;
    this._next.disabled = index >= count - 1;
  }

  /** Which actions the turn offers now (a reply that still streams, or was never started, has fewer). */
  setEnabled(enabled: { regenerate: boolean; replay: boolean; edit: boolean }): void {
    this._regenerate.disabled = !enabled.regenerate;
    this._replay.disabled = !enabled.replay;
    this._replay.hidden = !enabled.replay;
    this._edit.disabled = !enabled.edit;
  }

  /** How the reply was asked (steering.ts `paramsText`); `system`: the system prompt, shown on hover. */
  setParams(text: string, system: string): void {
    this._params.textContent = text;
    this._params.title = system ? `System prompt: ${system}` : '';
  }

  /** Say what a replay found (replayNote in exporting.ts). */
  showNote(text: string): void {
    this._note.textContent = text;
    this._note.hidden = text === '';
  }

  private _startEdit(): void {
    if (this._editor !== null) {
      this._editor.querySelector('textarea')?.focus();
      return;
    }
    const textarea = document.createElement('textarea');
    textarea.className = 'jp-StreamChat-editInput';
    textarea.value = this._prompt;
    textarea.rows = Math.min(8, Math.max(2, this._prompt.split('\n').length));
    textarea.setAttribute('aria-label', 'Edited prompt');
    const send = (): void => {
      const text = textarea.value.trim();
      if (text !== '') {
        this._stopEdit();
        this._actions.edit(text);
      }
    };
    textarea.addEventListener('keydown', event => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      } else if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation(); // Escape here cancels the edit, it does not stop a reply
        this._stopEdit();
      }
    });
    const buttons = element('div', 'jp-StreamChat-editActions');
    buttons.append(
      button('Send edited prompt', 'Send the edited prompt as a new branch (Enter)', send),
      button('Cancel editing', 'Keep the prompt as it is (Escape)', () => this._stopEdit())
    );
    this._editor = element('div', 'jp-StreamChat-editor');
    this._editor.append(textarea, buttons);
    this._promptNode.replaceWith(this._editor);
    textarea.focus();
  }

  private _stopEdit(): void {
    this._editor?.replaceWith(this._promptNode);
    this._editor = null;
  }

  private _promptNode: HTMLElement;
  private _promptText: HTMLElement;
  private _edit: HTMLButtonElement;
  private _editor: HTMLElement | null = null;
  private _nav: HTMLElement;
  private _previous: HTMLButtonElement;
  private _position: HTMLElement;
  private _next: HTMLButtonElement;
  private _regenerate: HTMLButtonElement;
  private _replay: HTMLButtonElement;
  private _note: HTMLElement;
  private _params: HTMLElement;
}
