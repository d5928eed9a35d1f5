/**
 * The panel's composer: the message's context (chips and the Context view, which the panel puts
 * in `contextHost`), the message with its `@` list (`mentionHost`), "Include active cell",
 * "Include outputs", Send, Stop (chat) and Stop all (compare). Enter sends, Shift+Enter adds a
 * line; the panel decides what they do, and may take a key first (the `@` list's keys).
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
  /** "Include outputs" was pressed. */
  includeOutputs(): void;
  /** A key in the message, before the composer acts on it: true when the panel took it. */
  keydown(event: KeyboardEvent): boolean;
  /** The caret moved or the text changed (the `@` list follows it). */
  caretMoved(): void;
  /** The message lost the focus. */
  blurred(): void;
}

/** What the composer shows; the panel passes it on every update. */
export interface IComposerState {
  compare: boolean;
  /** A reply of the current mode is streaming: Stop (chat) or Stop all (compare) shows. */
  streaming: boolean;
  /** The server offers models: there is something to send to. */
  hasModels: boolean;
  includeContext: boolean;
}

const NAVIGATION_KEYS = new Set(['ArrowLeft', 'ArrowRight', 'Home', 'End', 'PageUp', 'PageDown']);

export class Composer {
  readonly node: HTMLElement;

  constructor(actions: IComposerActions) {
    this._contextButton = button(
      'Include active cell',
      'Add the active cell (or its selection) to the message',
      () => actions.toggleContext()
    );
    this._outputsButton = button(
      'Include outputs',
      'Add the image outputs of the active cell (plots, pictures) to the message',
      () => actions.includeOutputs()
    );
    this.contextHost = element('div', 'jp-StreamChat-contextHost');
    this._textarea = document.createElement('textarea');
    this._textarea.className = 'jp-StreamChat-input';
    this._textarea.rows = 3;
    this._textarea.placeholder = 'Message (Enter sends, Shift+Enter adds a line)';
    this._textarea.setAttribute('aria-label', 'Message');
    this._textarea.addEventListener('keydown', event => {
      if (actions.keydown(event)) {
        return;
      }
      // Not while an input method composes (Enter then picks a candidate).
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        actions.send();
      }
    });
    this._textarea.addEventListener('input', () => {
      actions.edited();
      actions.caretMoved();
    });
    for (const type of ['click', 'keyup']) {
      this._textarea.addEventListener(type, event => {
        // Keys that move the caret; the ones that type go through 'input'.
        if (!(event instanceof KeyboardEvent) || NAVIGATION_KEYS.has(event.key)) {
          actions.caretMoved();
        }
      });
    }
    this._textarea.addEventListener('blur', () => actions.blurred());
    this.mentionHost = element('div', 'jp-StreamChat-mentionHost');
    const field = element('div', 'jp-StreamChat-inputField');
    field.append(this.mentionHost, this._textarea);
    this._sendButton = button('Send', 'Send the message (Enter)', () => actions.send());
    this._stopButton = button('Stop', 'Stop the reply; the partial reply is kept (Escape)', () =>
      actions.stop()
    );
    this._stopAllButton = button('Stop all', 'Stop every pane (Escape)', () => actions.stop());
    const buttons = element('div', 'jp-StreamChat-composerActions');
    buttons.append(
      this._contextButton,
      this._outputsButton,
      this._sendButton,
      this._stopButton,
      this._stopAllButton
    );
    this.node = element('div', 'jp-StreamChat-composer');
    this.node.append(this.contextHost, field, buttons);
  }

  /** Where the panel shows the message's context (chips, Context view). */
  readonly contextHost: HTMLElement;
  /** Where the panel shows the `@` list, just above the message. */
  readonly mentionHost: HTMLElement;

  /** The Message box itself (the `@` list reads and completes its text). */
  get textarea(): HTMLTextAreaElement {
    return this._textarea;
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
  }

  private _contextButton: HTMLButtonElement;
  private _outputsButton: HTMLButtonElement;
  private _textarea: HTMLTextAreaElement;
  private _sendButton: HTMLButtonElement;
  private _stopButton: HTMLButtonElement;
  private _stopAllButton: HTMLButtonElement;
}
