/**
 * The panel's composer: the context chip and its preview, the message, Send, Stop (chat) and
 * Stop all (compare). Enter sends, Shift+Enter adds a line; the panel decides what they do.
 */

import { button, element } from './dom';

/** What the composer's controls ask the panel for. */
export interface IComposerActions {
  send(): void;
  stop(): void;
  /** The message changed (Send follows whether there is one). */
  edited(): void;
  /** "Include active cell" was pressed. */
  toggleContext(): void;
}

/** What the composer shows; the panel passes it on every update. */
export interface IComposerState {
  compare: boolean;
  /** A reply of the current mode is streaming: Stop (chat) or Stop all (compare) shows. */
  streaming: boolean;
  /** The server offers models: there is something to send to. */
  hasModels: boolean;
  includeContext: boolean;
  /** The context that goes with the message ('' for none). */
  context: string;
}

export class Composer {
  readonly node: HTMLElement;

  constructor(actions: IComposerActions) {
    this._contextButton = button(
      'Include active cell',
      'Add the active cell (or its selection) to the message',
      () => actions.toggleContext()
    );
    this._contextPreview = element('pre', 'jp-StreamChat-contextPreview');
    this._contextPreview.setAttribute('aria-label', 'Context');
    this._textarea = document.createElement('textarea');
    this._textarea.className = 'jp-StreamChat-input';
    this._textarea.rows = 3;
    this._textarea.placeholder = 'Message (Enter sends, Shift+Enter adds a line)';
    this._textarea.setAttribute('aria-label', 'Message');
    this._textarea.addEventListener('keydown', event => {
      // Not while an input method composes (Enter then picks a candidate).
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        actions.send();
      }
    });
    this._textarea.addEventListener('input', () => actions.edited());
    this._sendButton = button('Send', 'Send the message (Enter)', () => actions.send());
    this._stopButton = button('Stop', 'Stop the reply; the partial reply is kept (Escape)', () =>
      actions.stop()
    );
    this._stopAllButton = button('Stop all', 'Stop every pane (Escape)', () => actions.stop());
    const buttons = element('div', 'jp-StreamChat-composerActions');
    buttons.append(this._contextButton, this._sendButton, this._stopButton, this._stopAllButton);
    this.node = element('div', 'jp-StreamChat-composer');
    this.node.append(this._contextPreview, this._textarea, buttons);
  }

  /** The message as it would be sent (trimmed). */
  get message(): string {
    return this._textarea.value.trim();
  }

  clear(): void {
    this._textarea.value = '';
  }

  focus(): void {
    this._textarea.focus();
  }

  /** Bring the controls in line with the state (cheap: runs on every render of a reply). */
  show(state: IComposerState): void {
    this._stopButton.hidden = state.compare || !state.streaming;
    this._stopAllButton.hidden = !state.compare || !state.streaming;
    this._sendButton.disabled = !state.hasModels || this.message === '';
    this._contextButton.setAttribute('aria-pressed', String(state.includeContext));
    if (this._contextPreview.textContent !== state.context) {
      this._contextPreview.textContent = state.context;
    }
    this._contextPreview.hidden = state.context === '';
  }

  private _contextButton: HTMLButtonElement;
  private _contextPreview: HTMLElement;
  private _textarea: HTMLTextAreaElement;
  private _sendButton: HTMLButtonElement;
  private _stopButton: HTMLButtonElement;
  private _stopAllButton: HTMLButtonElement;
}
