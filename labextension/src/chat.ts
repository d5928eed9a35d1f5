/**
 * The chat of one notebook: its recorded conversations (from `metadata.streamchat`) and its live
 * runs (detached), one element per run whatever its source -- this panel, a reload, or a cell
 * (`%%chat`, `chat()`) of the same notebook: one run, two views.
 *
 * A conversation is a tree (SPEC 11, tree.ts): the thread shows the branch that ends at the active
 * leaf, and each turn where it stands among its alternatives. A new prompt follows that leaf
 * (`parent`); "Regenerate" asks the same prompt again after the same parent, "Edit" sends a new
 * prompt after it, "Replay" runs a turn again with its recorded model and parameters. Switching
 * alternatives writes the conversation's `active` into the open document (the user's save keeps it).
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';

import { fetchAPI, requestAPI } from './api';
import { IChatEntry, paramsOf, reproOf } from './chatentry';
import type { ISteeringForm } from './chatsection';
import { ChatTurns } from './chatturns';
import { replayNote } from './exporting';
import { IReplyContext, STREAM_BATCH } from './reply';
import { IRunRecord } from './run';
import { followRun, StreamRefusedError } from './sse';
import { sentItems } from './sentcontext';
import { withStreamSlot } from './slots';
import { ISteering } from './steering';
import { IWireItem } from './tokens';
import { TurnView } from './turnview';
import { firstLine, messageOf } from './util';

/** What the chat asks of the panel around it. */
export interface IChatEnv {
  /** The model the panel's "Model" picker names. */
  model(): string;
  /** The conversation's system prompt and options from the panel's form, or why they are wrong. */
  steering(): { steering: ISteering } | { error: string };
  /** Say something in the panel's status line (an error: as an alert). */
  status(text: string, error?: boolean): void;
}

/** What a new run is asked with. */
interface IStart {
  model: string;
  prompt: string;
  parent: string | null;
  context: IWireItem[];
  steering: ISteering;
  replayOf?: IChatEntry;
}

export class NotebookChat extends ChatTurns {
  /** Per conversation: the parameters as the user typed them in the panel's form. */
  readonly typedSteering = new Map<string, ISteeringForm>();

  constructor(
    context: IReplyContext,
    notebook: NotebookPanel | null,
    private readonly _env: IChatEnv
  ) {
    super(context, notebook);
    notebook?.context.model.metadataChanged.connect(this.refresh, this);
    void notebook?.context.ready.then(() => this.refresh());
    this.refresh();
  }

  /**
   * Start a detached run for `prompt` (and its context items) in the shown conversation, after its
   * active leaf; the server builds the history along that branch. True once the server took it.
   */
  async send(
    model: string,
    prompt: string,
    context: IWireItem[] = [],
    steering: ISteering = {}
  ): Promise<boolean> {
    this.dropRefused();
    return this._start({ model, prompt, parent: this.nextParent(), context, steering });
  }

  /** Stop every running reply of the shown conversation (the partials are kept, marked stopped). */
  async stop(): Promise<void> {
    await Promise.all(this.runningEntries().map(entry => this._stop(entry)));
  }

  /** Show (and follow) runs of this notebook that are running on the server: after a reload, or from cells. */
  async attachRunning(): Promise<void> {
    const path = this.path;
    // While a send waits for its run id, a listed run may be that one: look again next time.
    if (path === null || this.disposed || this.pending.size > 0) {
      return;
    }
    const query = `runs?status=running&notebook=${encodeURIComponent(path)}`;
    const { runs } = await requestAPI<{ runs: IRunRecord[] }>(query);
    let added: IChatEntry | null = null;
    for (const record of runs.reverse()) {
      if (this.entries.has(record.id) || this.disposed || this.pending.size > 0) {
        continue;
      }
      const entry = this.addEntry({
        conversation: record.conversation ?? 'default',
        created: record.created,
        prompt: record.prompt ?? '',
        model: record.model,
        parent: record.parent ?? null,
        runId: record.id
      });
      entry.notebook = record.notebook ?? path;
      entry.reply.applyRecord(record);
      this.choose(entry); // the newest turn of its conversation
      void this._follow(entry);
      added = entry;
    }
    if (added !== null && this.running.length === 0) {
      this.showConversation(added.conversation); // show what is streaming now
    }
    if (added !== null) {
      this.refresh();
    }
  }

  dispose(): void {
    this.notebook?.context.model.metadataChanged.disconnect(this.refresh, this);
    super.dispose();
  }

  protected turnActions(entry: IChatEntry): ConstructorParameters<typeof TurnView>[3] {
    return {
      edit: prompt => void this._again(entry, prompt),
      regenerate: () => void this._again(entry, entry.prompt),
      replay: () => void this._replay(entry),
      alternative: step => this.switchAlternative(entry, step)
    };
  }

  protected reportStatus(text: string, error = false): void {
    this._env.status(text, error);
  }

  /** Regenerate (`prompt` unchanged) or Edit: a new turn after `entry`'s parent, as the panel is set now. */
  private async _again(entry: IChatEntry, prompt: string): Promise<void> {
    const read = this._env.steering();
    if ('error' in read) {
      this._env.status(read.error, true);
      return;
    }
    this._env.status('');
    this.dropRefused();
    await this._start({
      model: this._env.model() || entry.model,
      prompt,
      parent: entry.parent,
      context: entry.wire,
      steering: read.steering
    });
  }

  /** Replay: `entry` again with its recorded model, parameters and history, as a new alternative. */
  private async _replay(entry: IChatEntry): Promise<void> {
    const params = paramsOf(entry);
    const options: { [key: string]: number } = {};
    for (const key of ['temperature', 'max_tokens', 'seed', 'top_p']) {
      if (typeof params[key] === 'number') {
        options[key] = params[key];
      }
    }
    const steering: ISteering = {};
    if (typeof params.system === 'string') {
      steering.system = params.system;
    }
    if (Object.keys(options).length > 0) {
      steering.options = options;
    }
    this._env.status('');
    this.dropRefused();
    await this._start({
      model: entry.model,
      prompt: entry.prompt,
      parent: entry.parent,
      context: entry.wire,
      steering,
      replayOf: entry
    });
  }

  private async _start(start: IStart): Promise<boolean> {
    const conversation = this.conversation;
    const entry = this.addEntry({
      conversation,
      created: new Date().toISOString(),
      prompt: start.prompt,
      model: start.model,
      parent: start.parent,
      runId: null,
      context: sentItems(start.context)
    });
    entry.wire = start.context;
    entry.sentParams = { ...(start.steering.options ?? {}) };
    if (start.steering.system !== undefined) {
      entry.sentParams.system = start.steering.system;
    }
    entry.replayOf = start.replayOf ?? null;
    entry.notebook = this.path;
    this.choose(entry);
    this.refresh();
    try {
      const body = {
        model: start.model,
        prompt: start.prompt,
        conversation,
        notebook: entry.notebook ?? undefined,
        parent: start.parent,
        context: start.context.length > 0 ? start.context : undefined,
        ...start.steering
      };
      const started = await requestAPI<{ id: string }>('runs', {
        method: 'POST',
        body: JSON.stringify(body)
      });
      this.keyEntry(entry, started.id);
      this.refresh(); // a running reply: Stop shows; a named run can be followed
      void this._follow(entry);
      return true;
    } catch (error) {
      // Refused (4xx) or not sent: no run started, so there is nothing to say about a record.
      const code =
        error instanceof ServerConnection.ResponseError
          ? `http_${error.response.status}`
          : 'request_failed';
      entry.reply.markEnded('failed', { code, message: firstLine(messageOf(error)) });
      this.refresh();
      return false;
    }
  }

  /** Follow the run's events until `done`, resuming after drops (Last-Event-ID). */
  private async _follow(entry: IChatEntry): Promise<void> {
    const runId = entry.reply.runId;
    const abort = new AbortController();
    entry.abort = abort;
    if (entry.stopWanted) {
      void this._stop(entry);
    }
    try {
      await withStreamSlot(
        abort.signal,
        () =>
          followRun(
            (last, signal) =>
              fetchAPI(`runs/${encodeURIComponent(runId)}/events?${STREAM_BATCH}`, {
                headers: { Accept: 'text/event-stream', 'Last-Event-ID': String(last) },
                cache: 'no-store',
                signal
              }),
            event => entry.reply.apply(event),
            abort.signal
          ),
        () => entry.reply.setWaiting(true)
      );
      if (entry.reply.state.finished) {
        void this._finished(entry);
      }
    } catch (error) {
      if (!abort.signal.aborted) {
        const code = error instanceof StreamRefusedError ? 'not_found' : 'stream_failed';
        entry.reply.markEnded('failed', { code, message: messageOf(error) });
      }
    } finally {
      if (entry.abort === abort) {
        entry.abort = null;
      }
      this.changed();
    }
  }

  /** The server's record of an ended run: its cost, its reproducibility record, whether it is saved. */
  private async _finished(entry: IChatEntry): Promise<void> {
    const signal = this.lifeSignal;
    try {
      const runId = encodeURIComponent(entry.reply.runId);
      entry.record = await requestAPI<IRunRecord>(`runs/${runId}`, { signal, cache: 'no-store' });
      entry.reply.applyFinished(entry.record);
      if (entry.replayOf !== null) {
        entry.view.showNote(replayNote(reproOf(entry.replayOf), entry.record));
      }
      this.changed();
    } catch (error) {
      if (!signal.aborted) {
        console.warn(`StreamChat: no record of run ${entry.reply.runId}`, error);
      }
    }
    if (entry.notebook !== null) {
      void entry.reply.confirmRecord(signal);
    }
  }

  private async _stop(entry: IChatEntry): Promise<void> {
    entry.stopWanted = true;
    const runId = entry.reply.runId;
    if (!runId) {
      return; // stopped as soon as the server names the run
    }
    try {
      await requestAPI(`runs/${encodeURIComponent(runId)}/stop`, { method: 'POST' });
    } catch (error) {
      console.warn(`StreamChat: could not stop run ${runId}`, error);
    }
  }
}
