/**
 * The "Stream Chat" side panel (SPEC section 8): a chat about the active notebook, or compare
 * mode, above one composer. Data flows one way: server events and notebook metadata go into the
 * views (chat.ts, compare.ts), user actions go out as requests.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { NotebookChat, messageOf, serverPath } from './chat';
import { CompareView } from './compare';
import { fillModelSelect, IModelInfo, loadModels } from './models';
import { cellContext, insertCellBelow } from './notebook';
import { button, element, warmUp } from './reply';

export const PANEL_ID = 'jp-StreamChat-panel';

/** Settings of the panel (schema/plugin.json). */
export interface IPanelSettings {
  defaultModel: string;
  compareModels: string[];
}

/** How often the panel looks for runs started elsewhere (cells, other tabs) while shown (ms). */
const POLL_RUNNING = 2000;

export const streamChatIcon = new LabIcon({
  name: 'jupyter-streamchat:chat',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z"/>' +
    '</svg>'
});

export class StreamChatPanel extends Widget {
  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _rendermime: IRenderMimeRegistry,
    languages: IEditorLanguageRegistry | null = null
  ) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-StreamChat-panel');
    this.title.caption = 'Stream Chat';
    this.title.label = 'Stream Chat';
    this.title.icon = streamChatIcon;
    this.node.setAttribute('aria-label', 'Stream Chat');

    // Header: mode, conversation, model.
    const modes = element('div', 'jp-StreamChat-modes');
    this._chatButton = button('Chat', 'Chat with one model about the notebook', () =>
      this.setMode('chat')
    );
    this._compareButton = button('Compare', 'Send one prompt to several models side by side', () =>
      this.setMode('compare')
    );
    this._newButton = button(
      'New conversation',
      'Start a new conversation in this notebook',
      () => {
        this._chat.newConversation();
        this._textarea.focus();
      }
    );
    modes.append(this._chatButton, this._compareButton, this._newButton);

    this._where = element('div', 'jp-StreamChat-where');
    this._modelSelect = document.createElement('select');
    this._conversationSelect = document.createElement('select');
    this._conversationSelect.addEventListener('change', () =>
      this._chat.setConversation(this._conversationSelect.value)
    );
    const chatHeader = element('div', 'jp-StreamChat-chatHeader');
    chatHeader.append(
      labelled('Model', this._modelSelect),
      labelled('Conversation', this._conversationSelect)
    );

    this._threadHost = element('div', 'jp-StreamChat-threadHost');
    this._chatSection = element('section', 'jp-StreamChat-chat');
    this._chatSection.setAttribute('aria-label', 'Chat');
    this._chatSection.append(chatHeader, this._threadHost);

    const replyContext = {
      rendermime: this._rendermime,
      languages,
      insertCode: (code: string) => this._insert(code, 'code'),
      insertMarkdown: (text: string) => this._insert(text, 'markdown'),
      notebookPath: () => serverPath(this._tracker.currentWidget)
    };
    this._compare = new CompareView(replyContext);
    this._compare.onChange = () => this._update();
    this._replyContext = replyContext;

    // Composer: context chip, message, Send / Stop.
    this._contextButton = button(
      'Include active cell',
      'Add the active cell (or its selection) to the message',
      () => {
        this._includeContext = !this._includeContext;
        this._update();
      }
    );
    this._contextPreview = element('pre', 'jp-StreamChat-contextPreview');
    this._contextPreview.setAttribute('aria-label', 'Context');
    this._textarea = document.createElement('textarea');
    this._textarea.className = 'jp-StreamChat-input';
    this._textarea.rows = 3;
    this._textarea.placeholder = 'Message (Enter sends, Shift+Enter adds a line)';
    this._textarea.setAttribute('aria-label', 'Message');
    this._textarea.addEventListener('keydown', event => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      }
    });
    this._textarea.addEventListener('input', () => this._update());
    this._sendButton = button('Send', 'Send the message (Enter)', () => void this.send());
    this._stopButton = button(
      'Stop',
      'Stop the reply; the partial reply is kept (Escape)',
      () => void this.stop()
    );
    this._stopAllButton = button('Stop all', 'Stop every pane (Escape)', () => void this.stop());
    const actions = element('div', 'jp-StreamChat-composerActions');
    actions.append(this._contextButton, this._sendButton, this._stopButton, this._stopAllButton);
    const composer = element('div', 'jp-StreamChat-composer');
    composer.append(this._contextPreview, this._textarea, actions);

    this._status = element('div', 'jp-StreamChat-status');
    this._status.setAttribute('role', 'status');

    // Only the active mode's section is in the DOM, so each accessible name is unique in the panel.
    this._modeHost = element('div', 'jp-StreamChat-modeHost');
    this.node.append(modes, this._where, this._modeHost, this._status, composer);
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape' && this._isStreaming()) {
        event.preventDefault();
        void this.stop();
      }
    });

    _tracker.currentChanged.connect(() => this._follow(), this);
    _tracker.activeCellChanged.connect(() => this._update(), this);
    this._follow();
    void this.loadModels();
  }

  get mode(): 'chat' | 'compare' {
    return this._mode;
  }

  setMode(mode: 'chat' | 'compare'): void {
    this._mode = mode;
    this._update();
  }

  /** Apply settings (default model, compare models); called at start and on every change. */
  configure(settings: IPanelSettings): void {
    this._settings = settings;
    if (this._models.length > 0) {
      fillModelSelect(
        this._modelSelect,
        this._models,
        settings.defaultModel || this._serverDefault,
        true
      );
      this._compare.setModels(this._models, settings.compareModels);
    }
  }

  async loadModels(): Promise<void> {
    this._setStatus('Loading models…');
    try {
      const { models, default: serverDefault } = await loadModels();
      this._models = models;
      this._serverDefault = serverDefault ?? null;
      fillModelSelect(
        this._modelSelect,
        models,
        this._settings.defaultModel || this._serverDefault
      );
      this._compare.setModels(models, this._settings.compareModels);
      this._setStatus(models.length === 0 ? 'No models are configured on the server.' : '');
    } catch (error) {
      this._setStatus(`Could not load models: ${messageOf(error)}`, true);
    }
    this._update();
  }

  /** Send the message (with the context, if included) in the current mode. */
  async send(): Promise<void> {
    const message = this._textarea.value.trim();
    if (message === '' || this._models.length === 0) {
      return;
    }
    const context = this._includeContext ? cellContext(this._tracker.currentWidget) : '';
    const prompt = context ? `${context}\n\n${message}` : message;
    this._textarea.value = '';
    this._update();
    if (this._mode === 'compare') {
      await this._compare.compare(prompt);
    } else {
      await this._chat.send(this._modelSelect.value, prompt);
    }
  }

  /** Stop what streams in the current mode (Stop, Stop all, Escape). */
  async stop(): Promise<void> {
    if (this._mode === 'compare') {
      this._compare.stopAll();
    } else {
      await this._chat.stop();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    warmUp(this._rendermime);
    void this._attachRunning();
    window.clearInterval(this._poll);
    this._poll = window.setInterval(() => void this._attachRunning(), POLL_RUNNING);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    window.clearInterval(this._poll);
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this._textarea.focus();
  }

  dispose(): void {
    window.clearInterval(this._poll);
    for (const chat of this._chats.values()) {
      chat.dispose();
    }
    this._chats.clear();
    super.dispose();
  }

  /** Show the chat of the active notebook (one per open document, kept while it is open). */
  private _follow(): void {
    const notebook = this._tracker.currentWidget;
    const key = notebook?.context ?? null;
    let chat = this._chats.get(key);
    if (chat === undefined) {
      chat = new NotebookChat(this._replyContext, notebook);
      chat.onChange = () => this._update();
      this._chats.set(key, chat);
      notebook?.context.disposed.connect(() => {
        this._chats.get(key)?.dispose();
        this._chats.delete(key);
      });
    }
    this._chat = chat;
    this._threadHost.replaceChildren(chat.node);
    if (this.isVisible) {
      void this._attachRunning();
    }
    this._update();
  }

  private async _attachRunning(): Promise<void> {
    try {
      await this._chat.attachRunning();
    } catch (error) {
      console.debug('StreamChat: could not list running runs', error);
    }
  }

  private _insert(source: string, type: 'code' | 'markdown'): void {
    const notebook: NotebookPanel | null = this._tracker.currentWidget;
    if (notebook === null) {
      this._setStatus('Open a notebook to insert cells into it.', true);
      return;
    }
    insertCellBelow(notebook, source, type);
  }

  private _isStreaming(): boolean {
    return this._mode === 'compare' ? this._compare.running : this._chat.running.length > 0;
  }

  /** Bring the controls in line with the state (cheap: runs on every render of a reply). */
  private _update(): void {
    const compare = this._mode === 'compare';
    this._chatButton.setAttribute('aria-pressed', String(!compare));
    this._compareButton.setAttribute('aria-pressed', String(compare));
    const section = compare ? this._compare.node : this._chatSection;
    if (this._modeHost.firstChild !== section) {
      this._modeHost.replaceChildren(section);
    }
    this._newButton.hidden = compare;

    const path = this._chat.path;
    this._where.textContent =
      path === null ? 'No notebook: replies are not saved' : `Notebook: ${path}`;
    const conversations = this._chat.conversations();
    const signature =
      conversations.map(c => `${c.id}\u0000${c.label}`).join('\u0001') + this._chat.conversation;
    if (signature !== this._conversationSignature) {
      this._conversationSignature = signature;
      this._conversationSelect.replaceChildren(
        ...conversations.map(c => {
          const option = document.createElement('option');
          option.value = c.id;
          option.textContent = c.label;
          return option;
        })
      );
      this._conversationSelect.value = this._chat.conversation;
    }

    const streaming = this._isStreaming();
    this._stopButton.hidden = compare || !streaming;
    this._stopAllButton.hidden = !compare || !streaming;
    this._sendButton.disabled = this._models.length === 0 || this._textarea.value.trim() === '';
    this._contextButton.setAttribute('aria-pressed', String(this._includeContext));
    const context = this._includeContext ? cellContext(this._tracker.currentWidget) : '';
    if (this._contextPreview.textContent !== context) {
      this._contextPreview.textContent = context;
    }
    this._contextPreview.hidden = context === '';
  }

  private _setStatus(text: string, error = false): void {
    this._status.textContent = text;
    this._status.setAttribute('role', error ? 'alert' : 'status');
    this._status.classList.toggle('jp-StreamChat-error', error);
  }

  private _mode: 'chat' | 'compare' = 'chat';
  private _models: IModelInfo[] = [];
  private _serverDefault: string | null = null;
  private _settings: IPanelSettings = { defaultModel: '', compareModels: [] };
  private _chats = new Map<unknown, NotebookChat>();
  private _chat!: NotebookChat;
  private _compare: CompareView;
  private _replyContext: ConstructorParameters<typeof CompareView>[0];
  private _includeContext = false;
  private _conversationSignature = '';
  private _poll = 0;
  private _chatButton: HTMLButtonElement;
  private _compareButton: HTMLButtonElement;
  private _newButton: HTMLButtonElement;
  private _where: HTMLElement;
  private _modelSelect: HTMLSelectElement;
  private _conversationSelect: HTMLSelectElement;
  private _threadHost: HTMLElement;
  private _modeHost: HTMLElement;
  private _chatSection: HTMLElement;
  private _contextButton: HTMLButtonElement;
  private _contextPreview: HTMLElement;
  private _textarea: HTMLTextAreaElement;
  private _sendButton: HTMLButtonElement;
  private _stopButton: HTMLButtonElement;
  private _stopAllButton: HTMLButtonElement;
  private _status: HTMLElement;
}

function labelled(text: string, control: HTMLElement): HTMLElement {
  const label = element('label', 'jp-StreamChat-field');
  control.setAttribute('aria-label', text);
  label.append(element('span', '', text), control);
  return label;
}
