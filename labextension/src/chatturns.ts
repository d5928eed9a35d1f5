/**
 * The turns of one notebook's chat and the thread that shows them (chat.ts adds the requests):
 * recorded turns (`metadata.streamchat`) and this page's live runs, one element per run, arranged
 * as a tree per conversation (tree.ts). The thread shows the branch that ends at the active leaf:
 * the document's `active`, unless this page started a run that is not recorded yet, or the user
 * picked an alternative that the document could not take.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { UUID } from '@lumino/coreutils';

import {
  conversationOptions,
  exportTurn,
  IChatEntry,
  IConversationTotal,
  paramsOf,
  totalOf,
  wireItems
} from './chatentry';
import { element } from './dom';
import { IExportTurn } from './exporting';
import { METADATA_KEY, UnreadableSectionError, withActive } from './metadata';
import { IConversation, IRecordedTurn, recordedConversations, serverPath } from './notebook';
import { IReplyContext, ReplyView } from './reply';
import { ISentItem } from './sentcontext';
import { paramsText } from './steering';
import { ConversationTree, LeafChoice } from './tree';
import { ITurnActions, TurnView } from './turnview';

export abstract class ChatTurns {
  /** The thread of the shown conversation (a scrolling log). */
  readonly node: HTMLElement;

  constructor(
    private readonly _context: IReplyContext,
    readonly notebook: NotebookPanel | null
  ) {
    this.node = element('div', 'jp-StreamChat-thread');
    this.node.setAttribute('role', 'log');
    this.node.setAttribute('aria-label', 'Chat history');
    this.node.tabIndex = 0;
    this.node.addEventListener('scroll', () => {
      const node = this.node;
      this._stickToBottom = node.scrollHeight - node.scrollTop - node.clientHeight < 40;
    });
    this._conversation = UUID.uuid4();
  }

  /** Called whenever what the panel shows around the thread may have changed. */
  onChange: (() => void) | null = null;

  get path(): string | null {
    return serverPath(this.notebook);
  }

  get conversation(): string {
    return this._conversation;
  }

  /** Conversations to offer: recorded ones, live ones and the current one, most recent first. */
  conversations(): { id: string; label: string }[] {
    return conversationOptions(this._all(), this._conversation);
  }

  setConversation(id: string): void {
    this._chosen = true;
    if (id !== this._conversation) {
      this._conversation = id;
      this._stickToBottom = true;
      this.refresh();
    }
  }

  newConversation(): void {
    this.setConversation(UUID.uuid4());
  }

  /** Replies of the shown conversation that are still running. */
  get running(): ReplyView[] {
    return this.runningEntries().map(e => e.reply);
  }

  /** The turns of the shown branch, first turn first. */
  shownBranch(): IChatEntry[] {
    const tree = this._tree(this._conversation);
    return tree.branch(this._leafKey(this._conversation, tree));
  }

  /** The shown branch as Export and "Insert as cells" take it. */
  exportTurns(): IExportTurn[] {
    return this.shownBranch().map(exportTurn);
  }

  /** Tokens and cost of every reply of the shown conversation, alternatives included. */
  total(): IConversationTotal {
    return totalOf(this._all().filter(e => e.conversation === this._conversation));
  }

  /** The `params` of the shown branch's last turn: the settings the conversation goes on with. */
  leafParams(): { [key: string]: unknown } {
    const branch = this.shownBranch();
    return branch.length > 0 ? paramsOf(branch[branch.length - 1]) : {};
  }

  /** Bring the thread in line with the metadata and the live runs (existing elements are kept). */
  refresh(): void {
    if (this._disposed) {
      return;
    }
    this._recorded = this.notebook ? recordedConversations(this.notebook) : [];
    if (!this._chosen && this._recorded.length > 0) {
      // Until the user picks one, show the notebook's most recent conversation.
      this._conversation = this._recorded[0].id;
    }
    for (const conversation of this._recorded) {
      for (const turn of conversation.turns) {
        this._takeRecorded(conversation.id, turn);
      }
    }
    const tree = this._tree(this._conversation);
    const branch = tree.branch(this._leafKey(this._conversation, tree));
    for (const entry of branch) {
      const { siblings, index } = tree.alternatives(entry);
      entry.view.setAlternatives(index, siblings.length);
      const params = paramsOf(entry);
      const answered = entry.recorded?.responseModel ?? entry.record?.response_model ?? null;
      entry.view.setParams(
        paramsText(params, answered, entry.model),
        typeof params.system === 'string' ? params.system : ''
      );
      const state = entry.reply.state;
      entry.view.setEnabled({
        regenerate: entry.prompt !== '',
        edit: entry.prompt !== '',
        replay: entry.prompt !== '' && entry.run !== null && state.finished && entry.model !== ''
      });
    }
    const shown = branch.map(e => e.node);
    const current = Array.from(this.node.children);
    if (shown.length !== current.length || shown.some((node, i) => node !== current[i])) {
      this.node.replaceChildren(...shown);
    }
    if (shown.length === 0) {
      this.node.appendChild(
        element(
          'p',
          'jp-StreamChat-empty',
          this.path === null
            ? 'No notebook is active: replies are not saved anywhere.'
            : 'Ask about this notebook. Replies are saved in its metadata.'
        )
      );
    }
    this._scroll();
    this.changed();
  }

  /**
   * Show the alternative `step` away from `entry` (and the branch below it where the user was last),
   * and write it into the open document as the conversation's `active`: the user's save keeps it,
   * and the next prompt follows it.
   */
  switchAlternative(entry: IChatEntry, step: number): void {
    const tree = this._tree(entry.conversation);
    const { siblings, index } = tree.alternatives(entry);
    const target = siblings[index + step];
    if (target === undefined) {
      return;
    }
    const leaf = tree.leafUnder(target);
    this._leaves.choose(entry.conversation, leaf.key);
    const model = this.notebook?.context.model;
    if (model && leaf.run !== null && leaf.recorded !== null) {
      try {
        const section = withActive(model.getMetadata(METADATA_KEY), entry.conversation, leaf.run);
        if (section !== null) {
          model.setMetadata(METADATA_KEY, section);
        }
      } catch (error) {
        if (!(error instanceof UnreadableSectionError)) {
          throw error;
        }
        this.reportStatus(
          `This choice is shown but not saved in the notebook: ${error.reason}`,
          true
        );
      }
    }
    this.refresh();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._life.abort();
    for (const entry of this.entries.values()) {
      entry.abort?.abort(); // detached runs go on without this view
    }
    this.entries.clear();
    this.node.remove();
  }

  protected abstract turnActions(entry: IChatEntry): ITurnActions;
  protected abstract reportStatus(text: string, error?: boolean): void;

  protected get disposed(): boolean {
    return this._disposed;
  }

  /** Aborted on dispose: ends the questions about records. */
  protected get lifeSignal(): AbortSignal {
    return this._life.signal;
  }

  protected runningEntries(): IChatEntry[] {
    return this._all().filter(
      e => e.conversation === this._conversation && !e.reply.state.finished
    );
  }

  /** The run a new prompt follows: the last named run of the shown branch (null: none). */
  protected nextParent(): string | null {
    return ConversationTree.lastRun(this.shownBranch());
  }

  /** Show `conversation` (a run attached to is streaming there). */
  protected showConversation(conversation: string): void {
    this._conversation = conversation;
    this._chosen = true;
    this._stickToBottom = true;
  }

  /** Make `entry` its conversation's leaf on this page (a run it just started or attached to). */
  protected choose(entry: IChatEntry): void {
    this._leaves.choose(entry.conversation, entry.key);
    if (entry.conversation === this._conversation) {
      this._stickToBottom = true;
    }
  }

  /** Forget the shown conversation's refused requests (a new request replaces them). */
  protected dropRefused(): void {
    for (const entry of [...this.pending]) {
      if (entry.conversation === this._conversation && entry.reply.state.finished) {
        this.pending.delete(entry);
        entry.reply.dispose();
        entry.node.remove();
      }
    }
  }

  protected addEntry(fields: {
    conversation: string;
    created: string;
    prompt: string;
    model: string;
    parent: string | null;
    runId: string | null;
    context?: ISentItem[];
    /** A finished reply to show at once (a recorded turn). */
    final?: Parameters<ReplyView['showFinal']>[0];
  }): IChatEntry {
    const reply = new ReplyView(this._context);
    if (fields.final !== undefined) {
      reply.showFinal(fields.final); // before `finished` is noted below: no refresh per loaded turn
    }
    const entry = {
      key: `local:${++this._localKeys}`,
      run: null,
      parent: fields.parent,
      created: fields.created,
      conversation: fields.conversation,
      prompt: fields.prompt,
      model: fields.model,
      wire: [],
      sentParams: {},
      replayOf: null,
      reply,
      notebook: null,
      abort: null,
      stopWanted: false,
      recorded: null,
      record: null
    } as unknown as IChatEntry;
    entry.view = new TurnView(fields.prompt, fields.context ?? [], reply, this.turnActions(entry));
    entry.node = entry.view.node;
    let finished = reply.state.finished;
    reply.onRender = () => {
      this._scroll();
      if (reply.state.finished !== finished) {
        finished = reply.state.finished; // the controls (Stop, Replay) change only when a run ends
        this.refresh();
      }
    };
    if (fields.runId === null) {
      this.pending.add(entry);
    } else {
      this.keyEntry(entry, fields.runId);
    }
    return entry;
  }

  protected keyEntry(entry: IChatEntry, runId: string): void {
    this.pending.delete(entry);
    entry.reply.setRunId(runId);
    const shownAlready = this.entries.get(runId);
    if (shownAlready !== undefined && shownAlready !== entry) {
      // The run ended and its turn reached the notebook's metadata before its POST answered (a loaded
      // machine): one element per run, the one that follows it to its end.
      shownAlready.node.remove();
      shownAlready.reply.dispose();
      entry.recorded = shownAlready.recorded;
    }
    this._leaves.rekey(entry.key, runId);
    entry.key = runId;
    entry.run = runId;
    this.entries.set(runId, entry);
  }

  protected changed(): void {
    this.onChange?.();
  }

  /** Named runs. */
  protected entries = new Map<string, IChatEntry>();
  /** Sent, not yet named by the server (or refused). */
  protected pending = new Set<IChatEntry>();

  private _all(): IChatEntry[] {
    return [...this.entries.values(), ...this.pending];
  }

  private _tree(conversation: string): ConversationTree<IChatEntry> {
    return new ConversationTree(this._all().filter(e => e.conversation === conversation));
  }

  private _leafKey(conversation: string, tree: ConversationTree<IChatEntry>): string | null {
    const active = this._recorded.find(c => c.id === conversation)?.active ?? null;
    return this._leaves.leaf(conversation, active, tree);
  }

  /** A recorded turn: a new entry, or the live one it records. */
  private _takeRecorded(conversation: string, turn: IRecordedTurn): void {
    let entry = this.entries.get(turn.run);
    if (entry === undefined) {
      entry = this.addEntry({
        conversation,
        created: turn.created,
        prompt: turn.prompt,
        model: turn.model,
        parent: turn.parent,
        runId: turn.run,
        context: turn.context,
        final: {
          id: turn.run,
          model: turn.model,
          status: turn.status,
          text: turn.reply,
          reasoning: turn.reasoning,
          error: turn.error,
          outputTokens: turn.outputTokens,
          inputTokens: turn.inputTokens,
          cost: turn.cost,
          created: turn.created,
          firstToken: turn.firstToken,
          finished: turn.finished
        }
      });
      entry.wire = wireItems(turn.raw);
    }
    entry.recorded = turn;
    entry.parent = turn.parent;
  }

  private _scroll(): void {
    const node = this.node;
    if (this._stickToBottom && node.scrollHeight - node.clientHeight > node.scrollTop + 1) {
      node.scrollTop = node.scrollHeight;
    }
  }

  private _conversation: string;
  private _recorded: IConversation[] = [];
  /** Per conversation: the leaf this page shows. */
  private _leaves = new LeafChoice<IChatEntry>(entry => entry.recorded !== null);
  private _localKeys = 0;
  private _stickToBottom = true;
  private _disposed = false;
  private _life = new AbortController();
  /** The user (or a run they started or attached to) chose the shown conversation. */
  private _chosen = false;
}
