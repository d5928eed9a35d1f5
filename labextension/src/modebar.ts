/** The panel's mode toggle: Chat or Compare, and "New conversation" in chat mode. */

import { button, element } from './dom';

export type PanelMode = 'chat' | 'compare';

export class ModeBar {
  readonly node: HTMLElement;

  constructor(actions: { setMode(mode: PanelMode): void; newConversation(): void }) {
    this._chatButton = button('Chat', 'Chat with one model about the notebook', () =>
      actions.setMode('chat')
    );
    this._compareButton = button('Compare', 'Send one prompt to several models side by side', () =>
      actions.setMode('compare')
    );
    this._newButton = button('New conversation', 'Start a new conversation in this notebook', () =>
      actions.newConversation()
    );
    this.node = element('div', 'jp-StreamChat-modes');
    this.node.append(this._chatButton, this._compareButton, this._newButton);
  }

  show(mode: PanelMode): void {
    const compare = mode === 'compare';
    this._chatButton.setAttribute('aria-pressed', String(!compare));
    this._compareButton.setAttribute('aria-pressed', String(compare));
    this._newButton.hidden = compare;
  }

  private _chatButton: HTMLButtonElement;
  private _compareButton: HTMLButtonElement;
  private _newButton: HTMLButtonElement;
}
