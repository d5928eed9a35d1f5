/**
 * The state of one run as its events arrive (SPEC sections 3 and 5): text, reasoning, status,
 * usage and the stats a reply shows. Pure (unit tested in node).
 */

import type { IRunEvent } from './sse';
import { statsText, tokensPerSecond } from './stats';
import { isObject } from './util';

export type RunStatus = 'running' | 'completed' | 'stopped' | 'failed' | 'interrupted';

export const TERMINAL_STATUSES: readonly RunStatus[] = [
  'completed',
  'stopped',
  'failed',
  'interrupted'
];

/** Whether a run that names a notebook is in it (SPEC section 6): see recorded.ts. */
export type RecordedState = 'pending' | 'recorded' | 'gone';

export interface IRunError {
  code: string;
  message: string;
  upstream_status?: number;
}

export interface IUsage {
  input_tokens?: number;
  output_tokens?: number;
}

/** A run record as `GET streamchat/runs` and `GET streamchat/runs/{id}` answer it. */
export interface IRunRecord {
  id: string;
  model: string;
  mode: 'detached' | 'direct';
  status: RunStatus;
  text: string;
  reasoning: string;
  usage: IUsage | null;
  finish_reason: string | null;
  error: IRunError | null;
  notebook: string | null;
  conversation: string | null;
  created: string;
  first_token: string | null;
  finished: string | null;
  prompt?: string;
  /** Only for a run that names a notebook. */
  recorded?: RecordedState;
  /** The reproducibility record (SPEC 11). */
  parent?: string | null;
  params?: { [key: string]: unknown };
  response_model?: string | null;
  system_fingerprint?: string | null;
  messages_sha256?: string | null;
  /** USD once the run ended, when its model has a price. */
  cost?: number | null;
}

export class RunState {
  id = '';
  model = '';
  status: RunStatus = 'running';
  text = '';
  reasoning = '';
  usage: IUsage = {};
  error: IRunError | null = null;
  /** Client clock (ms) when the request was sent, or the run's `created` time when attached. */
  startedAt: number;
  firstTokenAt: number | null = null;
  finishedAt: number | null = null;
  /** Text deltas seen: an estimate of output tokens until the provider reports usage. */
  deltas = 0;
  /** USD, once the server said (a priced model, both token counts reported). */
  cost: number | null = null;

  constructor(now: number = Date.now()) {
    this.startedAt = now;
  }

  get finished(): boolean {
    return this.status !== 'running';
  }

  /** Apply one event; returns false for an event that changes nothing shown. */
  apply(event: IRunEvent, now: number = Date.now()): boolean {
    const data = event.data;
    switch (event.type) {
      case 'run':
        this.id = str(data.id) ?? this.id;
        this.model = str(data.model) ?? this.model;
        return true;
      case 'delta':
        this.text += str(data.text) ?? '';
        this.deltas += 1;
        this.firstTokenAt ??= now;
        return true;
      case 'reasoning':
        this.reasoning += str(data.text) ?? '';
        this.firstTokenAt ??= now;
        return true;
      case 'snapshot':
        this.text = str(data.text) ?? '';
        this.reasoning = str(data.reasoning) ?? '';
        return true;
      case 'usage':
        this.usage = { ...this.usage, ...counts(data) };
        return true;
      case 'done':
        this.status = (str(data.status) as RunStatus | undefined) ?? 'failed';
        this.usage = { ...this.usage, ...counts(data.usage) };
        this.error = isObject(data.error) ? (data.error as unknown as IRunError) : null;
        this.finishedAt = now;
        return true;
      default:
        return false;
    }
  }

  /** Take what a run record knows (attaching to a run this page did not start). */
  applyRecord(record: IRunRecord): void {
    this.id = record.id;
    this.model = record.model;
    this.startedAt = Date.parse(record.created) || this.startedAt;
    if (record.first_token) {
      this.firstTokenAt = Date.parse(record.first_token) || null;
    }
  }

  /**
   * Take the clock of a finished run from its timestamps (a turn read from the notebook: its
   * statistics show after a reload as they did live).
   */
  applyTimes(times: {
    created?: string;
    firstToken?: string | null;
    finished?: string | null;
  }): void {
    const created = Date.parse(times.created ?? '');
    const first = Date.parse(times.firstToken ?? '');
    const finished = Date.parse(times.finished ?? '');
    if (Number.isFinite(created)) {
      this.startedAt = created;
      this.firstTokenAt = Number.isFinite(first) ? first : null;
      this.finishedAt = Number.isFinite(finished) ? finished : this.finishedAt;
    }
  }

  /** Seconds from the request to the first token, or null before it. */
  get timeToFirstToken(): number | null {
    return this.firstTokenAt === null
      ? null
      : Math.max(0, (this.firstTokenAt - this.startedAt) / 1000);
  }

  get outputTokens(): number {
    return this.usage.output_tokens ?? this.deltas;
  }

  /** Ended early with some text kept (as the notebook's turn says it). */
  get partial(): boolean {
    return this.finished && this.status !== 'completed' && this.text !== '';
  }

  /** Output tokens per second since the first token, or null while it cannot be told (stats.ts). */
  tokensPerSecond(now: number = Date.now()): number | null {
    return tokensPerSecond(this.firstTokenAt, this.finishedAt ?? now, this.outputTokens);
  }

  /** One line for the reply header: time to first token, tokens/s, tokens (stats.ts). */
  statsLine(now: number = Date.now()): string {
    return statsText(this.timeToFirstToken, this.tokensPerSecond(now), this.outputTokens);
  }

  /** The error as one line, `code: message`, or ''. */
  get errorLine(): string {
    return this.error === null ? '' : `${this.error.code}: ${this.error.message}`;
  }
}

/** The token counts of a usage object (the widgets keep the same: numbers only). */
function counts(usage: unknown): IUsage {
  const result: { [key: string]: number } = {};
  if (isObject(usage)) {
    for (const key of Object.keys(usage)) {
      const value = usage[key];
      if (typeof value === 'number' && Number.isInteger(value)) {
        result[key] = value;
      }
    }
  }
  return result as IUsage;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
