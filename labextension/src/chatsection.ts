/**
 * The panel's chat mode: the model and conversation pickers above the thread of the active
 * notebook's chat (chat.ts).
 */

import { element, labelled } from './dom';

/** A conversation the picker offers. */
export interface IConversationOption {
  id: string;
  label: string;
}

export class ChatSection {
  readonly node: HTMLElement;
  /** The model a chat message goes to. */
  readonly modelSelect: HTMLSelectElement;

  constructor(onConversation: (id: string) => void) {
    this.modelSelect = document.createElement('select');
    this._conversationSelect = document.createElement('select');
    this._conversationSelect.addEventListener('change', () =>
      onConversation(this._conversationSelect.value)
    );
    const header = element('div', 'jp-StreamChat-chatHeader');
    header.append(
      labelled('Model', this.modelSelect),
      labelled('Conversation', this._conversationSelect)
    );
    this._threadHost = element('div', 'jp-StreamChat-threadHost');
    this.node = element('section', 'jp-StreamChat-chat');
    this.node.setAttribute('aria-label', 'Chat');
    this.node.append(header, this._threadHost);
  }

  /** Show a chat's thread (the active notebook's). */
  showThread(thread: HTMLElement): void {
    this._threadHost.replaceChildren(thread);
  }

  /** Offer `conversations` with `current` selected; rebuilt only when they changed. */
  showConversations(conversations: IConversationOption[], current: string): void {
    const signature = conversations.map(c => `${c.id}\u0000${c.label}`).join('\u0001') + current;
    if (signature === this._signature) {
      return;
    }
    this._signature = signature;
    this._conversationSelect.replaceChildren(
      ...conversations.map(c => {
        const option = document.createElement('option');
        option.value = c.id;
        option.textContent = c.label;
        return option;
      })
    );
    this._conversationSelect.value = current;
  }

  private _conversationSelect: HTMLSelectElement;
  private _threadHost: HTMLElement;
  private _signature = '';
}
