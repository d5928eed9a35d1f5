/**
 * One turn of the panel's chat (recorded, live, or refused) and what is read from it: how it was
 * asked, what a replay compares, its export entry, the conversation's total.
 */

import type { JSONObject } from '@lumino/coreutils';

import { IExportTurn, IReproFields } from './exporting';
import { IRecordedTurn } from './notebook';
import { ReplyView } from './reply';
import { IRunRecord } from './run';
import { IWireItem } from './tokens';
import { costText } from './steering';
import { ITreeNode } from './tree';
import { TurnView } from './turnview';
import { isObject, oneLine } from './util';

/** One turn of the chat: recorded, live, or refused (never named by the server). */
export interface IChatEntry extends ITreeNode {
  key: string;
  run: string | null;
  parent: string | null;
  created: string;
  conversation: string;
  prompt: string;
  model: string;
  /** The context items to send again with this prompt (Regenerate, Edit, Replay). */
  wire: IWireItem[];
  /** The `params` this page sent (system and options), before the server's record says. */
  sentParams: { [key: string]: unknown };
  /** The turn this one replays (its note compares their records). */
  replayOf: IChatEntry | null;
  view: TurnView;
  reply: ReplyView;
  node: HTMLElement;
  /** The notebook the run is recorded in (server-relative), or null. */
  notebook: string | null;
  /** Set while this page follows the run's events. */
  abort: AbortController | null;
  stopWanted: boolean;
  /** The turn as the notebook records it, once it does. */
  recorded: IRecordedTurn | null;
  /** The server's record of the ended run. */
  record: IRunRecord | null;
}

/** The numbers of a conversation's replies (every alternative cost something). */
export interface IConversationTotal {
  replies: number;
  inputTokens: number;
  outputTokens: number;
  /** USD of the priced replies, or null when none has a price. */
  cost: number | null;
  priced: number;
}

/** The text items a recorded prompt was sent with, to send them again (images are not kept). */
export function wireItems(turn: JSONObject): IWireItem[] {
  const context = turn.context;
  if (!Array.isArray(context)) {
    return [];
  }
  const items: IWireItem[] = [];
  for (const item of context) {
    if (isObject(item) && typeof item.text === 'string' && item.kind !== 'image') {
      const wire: IWireItem = { kind: item.kind as IWireItem['kind'], text: item.text };
      if (typeof item.name === 'string') {
        wire.name = item.name;
      }
      items.push(wire);
    }
  }
  return items;
}

/** How `entry` was asked: as recorded, else as the server's record says, else as this page sent it. */
export function paramsOf(entry: IChatEntry): { [key: string]: unknown } {
  const params = entry.recorded?.params ?? entry.record?.params;
  return isObject(params) ? params : entry.sentParams;
}

/** What a replay is compared on, from the notebook's turn or the server's record. */
export function reproOf(entry: IChatEntry): IReproFields {
  const recorded = entry.recorded;
  if (recorded !== null) {
    return {
      response_model: recorded.responseModel,
      system_fingerprint: recorded.systemFingerprint,
      messages_sha256: recorded.messagesSha256
    };
  }
  return entry.record ?? {};
}

/** `entry` as "Insert as cells" takes it. */
export function exportTurn(entry: IChatEntry): IExportTurn {
  return {
    model: entry.model || entry.reply.state.model,
    prompt: entry.prompt,
    reply: entry.reply.state.text,
    stats: [
      entry.reply.state.status,
      entry.reply.state.statsLine(),
      costText(entry.reply.state.cost)
    ]
      .filter(Boolean)
      .join(' · ')
  };
}

/** Tokens and cost of the ended replies among `entries` (every alternative cost something). */
export function totalOf(entries: readonly IChatEntry[]): IConversationTotal {
  const total: IConversationTotal = {
    replies: 0,
    inputTokens: 0,
    outputTokens: 0,
    cost: null,
    priced: 0
  };
  for (const entry of entries) {
    const state = entry.reply.state;
    if (entry.run === null || !state.finished) {
      continue;
    }
    total.replies += 1;
    total.inputTokens += state.usage.input_tokens ?? 0;
    total.outputTokens += state.outputTokens;
    if (state.cost !== null) {
      total.cost = (total.cost ?? 0) + state.cost;
      total.priced += 1;
    }
  }
  return total;
}

/** The conversations to offer, most recent first, labelled by their first prompt; `current` too. */
export function conversationOptions(
  entries: readonly IChatEntry[],
  current: string
): { id: string; label: string }[] {
  const byId = new Map<
    string,
    { latest: string; earliest: string; first: string; turns: number }
  >();
  for (const entry of entries) {
    const seen = byId.get(entry.conversation);
    if (seen === undefined) {
      byId.set(entry.conversation, {
        latest: entry.created,
        earliest: entry.created,
        first: entry.prompt,
        turns: 1
      });
      continue;
    }
    seen.turns += 1;
    if (entry.created > seen.latest) {
      seen.latest = entry.created;
    }
    if (entry.created < seen.earliest) {
      seen.earliest = entry.created;
      seen.first = entry.prompt;
    }
  }
  const options = [...byId.entries()]
    .sort((a, b) => (a[1].latest < b[1].latest ? 1 : -1))
    .map(([id, c]) => ({ id, label: `${oneLine(c.first, 40)} (${c.turns})` }));
  if (!byId.has(current)) {
    options.unshift({ id: current, label: 'New conversation' });
  }
  return options;
}
