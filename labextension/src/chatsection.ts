/**
 * The panel's chat mode: the model and conversation pickers, the conversation's parameters
 * ("System prompt", "Temperature", "Max tokens"), its total (replies, tokens, cost) with "Export"
 * and "Insert as cells", above the thread of the active notebook's chat (chat.ts).
 */

import type { IConversationTotal } from './chatentry';
import { button, element, labelled } from './dom';
import { totalText } from './steering';

/** A conversation the picker offers. */
export interface IConversationOption {
  id: string;
  label: string;
}

/** The export formats, as the "Export format" picker names them. */
export const EXPORT_FORMATS = { markdown: 'Markdown', html: 'HTML', json: 'JSON' } as const;
export type ExportFormat = keyof typeof EXPORT_FORMATS;

/** The parameters form's text (steering.ts reads it). */
export interface ISteeringForm {
  system: string;
  temperature: string;
  maxTokens: string;
}

/** What the section's controls ask the panel for. */
export interface IChatSectionActions {
  conversation(id: string): void;
  /** The parameters form was edited. */
  steering(): void;
  export(format: ExportFormat): void;
  insertCells(): void;
}

export class ChatSection {
  readonly node: HTMLElement;
  /** The model a chat message goes to. */
  readonly modelSelect: HTMLSelectElement;

  constructor(actions: IChatSectionActions) {
    this.modelSelect = document.createElement('select');
    this._conversationSelect = document.createElement('select');
    this._conversationSelect.addEventListener('change', () =>
      actions.conversation(this._conversationSelect.value)
    );
    const header = element('div', 'jp-StreamChat-chatHeader');
    header.append(
      labelled('Model', this.modelSelect),
      labelled('Conversation', this._conversationSelect)
    );

    this._system = document.createElement('textarea');
    this._system.className = 'jp-StreamChat-systemInput';
    this._system.rows = 2;
    this._system.placeholder = 'Sent first, before the conversation (optional)';
    this._temperature = numberInput('decimal');
    this._maxTokens = numberInput('numeric');
    for (const input of [this._system, this._temperature, this._maxTokens]) {
      input.addEventListener('input', () => actions.steering());
    }
    const numbers = element('div', 'jp-StreamChat-paramNumbers');
    numbers.append(
      labelled('Temperature', this._temperature),
      labelled('Max tokens', this._maxTokens)
    );
    this._params = document.createElement('details');
    this._params.className = 'jp-StreamChat-params';
    const summary = element('summary', '', 'Parameters');
    this._params.append(summary, labelled('System prompt', this._system), numbers);

    this._format = document.createElement('select');
    for (const [value, label] of Object.entries(EXPORT_FORMATS)) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      this._format.appendChild(option);
    }
    this._export = button('Export', 'Download the shown branch of the conversation', () =>
      actions.export(this._format.value as ExportFormat)
    );
    this._insert = button(
      'Insert as cells',
      'Insert the shown branch as Markdown cells below the active cell',
      () => actions.insertCells()
    );
    this._total = element('div', 'jp-StreamChat-total');
    this._total.setAttribute('aria-label', 'Conversation total');
    const tools = element('div', 'jp-StreamChat-conversationTools');
    tools.append(labelled('Export format', this._format), this._export, this._insert);

    this._threadHost = element('div', 'jp-StreamChat-threadHost');
    this.node = element('section', 'jp-StreamChat-chat');
    this.node.setAttribute('aria-label', 'Chat');
    this.node.append(header, this._params, tools, this._total, this._threadHost);
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

  /** The parameters as typed. */
  get steering(): ISteeringForm {
    return {
      system: this._system.value,
      temperature: this._temperature.value,
      maxTokens: this._maxTokens.value
    };
  }

  /** Fill the parameters (another conversation is shown); opened when any is set. */
  setSteering(form: ISteeringForm): void {
    this._system.value = form.system;
    this._temperature.value = form.temperature;
    this._maxTokens.value = form.maxTokens;
    if (form.system || form.temperature || form.maxTokens) {
      this._params.open = true;
    }
  }

  /** The conversation's total (none before a reply ended), and whether there is a branch to export. */
  showTotal(total: IConversationTotal, hasTurns: boolean): void {
    const { replies, inputTokens, outputTokens, cost, priced } = total;
    const text =
      replies === 0
        ? ''
        : `Conversation: ${totalText(replies, inputTokens, outputTokens, cost, priced)}`;
    this._total.textContent = text;
    this._total.hidden = text === '';
    this._export.disabled = !hasTurns;
    this._insert.disabled = !hasTurns;
  }

  private _conversationSelect: HTMLSelectElement;
  private _system: HTMLTextAreaElement;
  private _temperature: HTMLInputElement;
  private _maxTokens: HTMLInputElement;
  private _params: HTMLDetailsElement;
  private _format: HTMLSelectElement;
  private _export: HTMLButtonElement;
  private _insert: HTMLButtonElement;
  private _total: HTMLElement;
  private _threadHost: HTMLElement;
  private _signature = '';
}

/**
 * A text field for a number: what the user typed is what the panel reads, so a mistake ("5", "x")
 * is refused in words rather than turned into "no value" by a number input.
 */
function numberInput(mode: 'decimal' | 'numeric'): HTMLInputElement {
  const input = document.createElement('input');
  input.type = 'text';
  input.inputMode = mode;
  input.placeholder = 'default';
  input.className = 'jp-StreamChat-numberInput';
  return input;
}
