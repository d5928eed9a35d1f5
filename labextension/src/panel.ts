/**
 * The "Stream Chat" side panel (SPEC section 8): a chat about the active notebook, or compare
 * mode, above one composer. Data flows one way: server events and notebook metadata go into the
 * views (chat.ts, compare.ts), user actions go out as requests.
 */

import { Clipboard } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ChatSection, ExportFormat } from './chatsection';
import { NotebookChat } from './chat';
import { CompareView, ICompareContext } from './compare';
import { Composer } from './composer';
import { element } from './dom';
import { exportBranch, insertTurnCells } from './download';
import { ModeBar, PanelMode } from './modebar';
import { fillModelSelect, IModelInfo, loadModels } from './models';
import { insertCellBelow, serverPath } from './notebook';
import { PanelContext } from './panelcontext';
import { messageOf } from './util';
import { renderUntrusted, warmUp } from './render';
import { formOf, readSteering } from './steering';

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
    this._setUpTitle();
    this._modeBar = this._buildModeBar();
    this._chatSection = new ChatSection({
      conversation: id => this._chat.setConversation(id),
      steering: () =>
        this._chat.typedSteering.set(this._chat.conversation, this._chatSection.steering),
      export: format => void this._export(format),
      insertCells: () => this._insertCells()
    });
    this._compare = new CompareView(this._buildReplyContext(languages));
    this._compare.onChange = () => this._update();
    this._composer = this._buildComposer();
    this._context = new PanelContext(this._composer, {
      status: (text, error) => this._setStatus(text, error),
      excludeCell: () => {
        this._includeContext = false;
        this._update();
      },
      edited: () => this._update()
    });
    this._status = element('div', 'jp-StreamChat-status');
    this._status.setAttribute('role', 'status');
    // Only the active mode's section is in the DOM, so each accessible name is unique in the panel.
    this._modeHost = element('div', 'jp-StreamChat-modeHost');
    this.node.append(
      this._modeBar.node,
      this._where,
      this._modeHost,
      this._status,
      this._composer.node
    );
    this._listen();
    this._follow();
    void this.loadModels();
  }

  private _setUpTitle(): void {
    this.id = PANEL_ID;
    this.addClass('jp-StreamChat-panel');
    this.title.caption = 'Stream Chat';
    this.title.label = 'Stream Chat';
    this.title.icon = streamChatIcon;
    this.node.setAttribute('aria-label', 'Stream Chat');
  }

  private _buildModeBar(): ModeBar {
    return new ModeBar({
      setMode: mode => this.setMode(mode),
      newConversation: () => {
        this._chat.newConversation();
        this._composer.focus();
      }
    });
  }

  /** What replies (chat and compare) need from the page: rendering, the clipboard, the notebook. */
  private _buildReplyContext(languages: IEditorLanguageRegistry | null): ICompareContext {
    this._replyContext = {
      renderMarkdown: (host, source) => renderUntrusted(this._rendermime, host, source),
      languages,
      copy: text => Clipboard.copyToSystem(text),
      insertCode: code => this._insert(code, 'code'),
      insertMarkdown: text => this._insert(text, 'markdown'),
      notebookPath: () => serverPath(this._tracker.currentWidget)
    };
    return this._replyContext;
  }

  private _buildComposer(): Composer {
    return new Composer({
      send: () => void this.send(),
      stop: () => void this.stop(),
      edited: () => this._update(),
      toggleContext: () => {
        this._includeContext = !this._includeContext;
        this._update();
      },
      includeOutputs: () => this._context.includeOutputs(),
      keydown: event => this._context.keydown(event),
      caretMoved: () => this._context.caretMoved(),
      blurred: () => this._context.blurred()
    });
  }

  /** Escape stops what streams; the active notebook and cell steer the panel. */
  private _listen(): void {
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape' && this._isStreaming()) {
        event.preventDefault();
        void this.stop();
      }
    });
    this._tracker.currentChanged.connect(() => this._follow(), this);
    this._tracker.activeCellChanged.connect(() => this._update(), this);
  }

  get mode(): PanelMode {
    return this._mode;
  }

  setMode(mode: PanelMode): void {
    this._mode = mode;
    this._update();
  }

  /** Apply settings (default model, compare models); called at start and on every change. */
  configure(settings: IPanelSettings): void {
    this._settings = settings;
    if (this._models.length > 0) {
      fillModelSelect(
        this._chatSection.modelSelect,
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
        this._chatSection.modelSelect,
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

  /**
   * Send the message with its context items in the current mode: only when every item is ready
   * (else a one-line reason, and the message stays). The picked items clear once it went.
   */
  async send(): Promise<void> {
    const message = this._composer.message;
    if (message === '' || this._models.length === 0) {
      return;
    }
    this._context.syncCell(this._includeContext);
    const context = this._context.model;
    const ready = context.sendable();
    if ('error' in ready) {
      this._setStatus(ready.error, true);
      return;
    }
    const steering = readSteering(this._chatSection.steering);
    if (this._mode === 'chat' && 'error' in steering) {
      this._setStatus(steering.error, true); // the message stays, nothing is sent
      return;
    }
    this._setStatus('');
    this._composer.clear();
    this._update();
    if (this._mode === 'compare') {
      context.clearSent();
      await this._compare.compare(message, ready.items);
    } else if (
      await this._chat.send(
        this._chatSection.modelSelect.value,
        message,
        ready.items,
        'steering' in steering ? steering.steering : {}
      )
    ) {
      context.clearSent();
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
    this._composer.focus();
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
      chat = new NotebookChat(this._replyContext, notebook, {
        model: () => this._chatSection.modelSelect.value,
        steering: () => readSteering(this._chatSection.steering),
        status: (text, error) => this._setStatus(text, error)
      });
      chat.onChange = () => this._update();
      this._chats.set(key, chat);
      notebook?.context.disposed.connect(() => {
        this._chats.get(key)?.dispose();
        this._chats.delete(key);
      });
    }
    this._chat = chat;
    this._context.follow(notebook);
    this._chatSection.showThread(chat.node);
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
    this._modeBar.show(this._mode);
    const section = compare ? this._compare.node : this._chatSection.node;
    if (this._modeHost.firstChild !== section) {
      this._modeHost.replaceChildren(section);
    }
    const path = this._chat.path;
    this._where.textContent =
      path === null ? 'No notebook: replies are not saved' : `Notebook: ${path}`;
    this._chatSection.showConversations(this._chat.conversations(), this._chat.conversation);
    this._showConversationState();
    this._composer.show({
      compare,
      streaming: this._isStreaming(),
      hasModels: this._models.length > 0,
      includeContext: this._includeContext
    });
    this._context.syncCell(this._includeContext);
  }

  /**
   * The shown conversation's parameters (as typed here, else as the shown branch's last turn was
   * asked: a notebook opened again goes on as it was) and its total.
   */
  private _showConversationState(): void {
    const chat = this._chat;
    const branch = chat.shownBranch();
    const shown = `${chat.path}\u0000${chat.conversation}\u0000${branch[branch.length - 1]?.key}`;
    if (shown !== this._steeringShown) {
      this._steeringShown = shown;
      const typed = chat.typedSteering.get(chat.conversation);
      this._chatSection.setSteering(typed ?? formOf(chat.leafParams()));
    }
    this._chatSection.showTotal(chat.total(), branch.length > 0);
  }

  private async _export(format: ExportFormat): Promise<void> {
    const chat = this._chat;
    // The shown branch ends at its last turn the server knows (a refused turn has no run).
    const runs = chat.shownBranch().flatMap(entry => (entry.run === null ? [] : [entry.run]));
    const leaf = runs[runs.length - 1] ?? null;
    try {
      const done = await exportBranch(format, chat.path, chat.conversation, leaf, runs.length);
      this._setStatus(done.text, done.error);
    } catch (error) {
      this._setStatus(`Export failed: ${(error as Error).message}`, true);
    }
  }

  private _insertCells(): void {
    const notebook = this._tracker.currentWidget;
    if (notebook === null) {
      this._setStatus('Open a notebook to insert cells into it.', true);
    } else {
      this._setStatus(insertTurnCells(notebook, this._chat.exportTurns()));
    }
  }

  private _setStatus(text: string, error = false): void {
    this._status.textContent = text;
    this._status.setAttribute('role', error ? 'alert' : 'status');
    this._status.classList.toggle('jp-StreamChat-error', error);
  }

  private _mode: PanelMode = 'chat';
  private _models: IModelInfo[] = [];
  private _serverDefault: string | null = null;
  private _settings: IPanelSettings = { defaultModel: '', compareModels: [] };
  private _chats = new Map<unknown, NotebookChat>();
  private _chat!: NotebookChat;
  private _replyContext!: ICompareContext;
  private _includeContext = false;
  /** The notebook, conversation and leaf whose parameters the form shows. */
  private _steeringShown = '';
  private _poll = 0;
  private _modeBar: ModeBar;
  private _where = element('div', 'jp-StreamChat-where');
  private _chatSection: ChatSection;
  private _compare: CompareView;
  private _modeHost: HTMLElement;
  private _status: HTMLElement;
  private _composer: Composer;
  private _context: PanelContext;
}
