/**
 * The page's document-events stream: one `GET {baseUrl}streamchat/documents/events?path=<a>&path=<b>…`
 * (SSE) for all the notebooks the page has open. The server says `ready` once it tells this stream
 * the turns of its paths, then `turn` for each turn it writes into one of their files (turnwritten.ts).
 *
 * A stream holds an HTTP connection, of which a browser has only 6 per host (HTTP/1.1) for all its
 * tabs: so a stream holds one of the origin's `STREAM_SLOTS` (slots.ts) until it ends. Reconnecting,
 * following the set of open notebooks and parking when no slot is free are the manager's
 * (handoff.ts).
 */

import type { ServerConnection } from '@jupyterlab/services';

import { fetchAPI } from './api';
import { isObject } from './util';
import { ReleaseSlot } from './slots';
import { readSSE } from './sse';
import { ITurnWritten, parseTurnWritten } from './turnwritten';

/** Timing knobs (milliseconds); exported for tests and for tuning. */
export const HandoffTimings = {
  /** First reconnect delay; doubled per failed attempt. */
  retryInitial: 500,
  /** Longest reconnect delay for transient failures. */
  retryMax: 30_000,
  /** Delay after an answer that will not change soon (400/403/404: bad path, persistence off). */
  retryRefused: 300_000,
  /** Delay before trying again for a stream slot when all are taken (by this or other tabs). */
  slotRetry: 3_000,
  /** Coalesce changes of the set of open notebooks (several opened at once) into one resubscription. */
  debounce: 150,
  /**
   * A stream that received nothing (not even a `: ping`, sent every 15 s by default) for this
   * long is treated as dead (half-open TCP connection) and reconnected.
   */
  idleTimeout: 75_000
};

/**
 * Paths one stream may name (the server's limit, `MAX_DOCUMENT_PATHS` in handlers.py): beyond it,
 * the least recently active notebooks of the page are parked.
 */
export const MAX_STREAM_PATHS = 64;

/** `ms` give or take 20 %, so that tabs that failed together do not retry together. */
export function jitter(ms: number): number {
  return ms * (0.8 + 0.4 * Math.random());
}

export function samePaths(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every(path => b.has(path));
}

/** How a stream ended (see `DocumentStream.done`). */
export type StreamEnd =
  /** The server ended it (e.g. a restart), or the page aborted it. */
  | { kind: 'ended' }
  | { kind: 'failed'; error: unknown }
  /**
   * 400/403/404: asking again will not help soon (persistence off, a path outside the server's
   * root). `path` is the one path the server refused, if it names one.
   */
  | { kind: 'refused'; reason: string; path: string | null };

/**
 * One `GET streamchat/documents/events?path=…` stream for a set of paths. It holds a stream slot
 * (slots.ts) until it ends, and never throws: `done` says how it ended.
 */
export class DocumentStream {
  constructor(
    readonly paths: ReadonlySet<string>,
    settings: ServerConnection.ISettings,
    release: ReleaseSlot,
    onTurn: (written: ITurnWritten) => void
  ) {
    let opened: () => void = () => undefined;
    const ready = new Promise<void>(resolve => (opened = resolve));
    this.done = this._read(
      settings,
      () => {
        this._ready = true;
        opened();
      },
      onTurn
    ).then(end => {
      release();
      this._ended = true;
      return end;
    });
    this.settled = Promise.race([ready, this.done]);
  }

  /** Settles when the stream ended (after its slot was released). */
  readonly done: Promise<StreamEnd>;

  /** Settles when the server's `ready` arrived, or the stream ended before. */
  readonly settled: Promise<unknown>;

  /** Whether the server's `ready` arrived: from then on it tells this stream the turns of `paths`. */
  get ready(): boolean {
    return this._ready;
  }

  get ended(): boolean {
    return this._ended;
  }

  abort(): void {
    this._abort.abort();
  }

  private async _read(
    settings: ServerConnection.ISettings,
    onReady: () => void,
    onTurn: (written: ITurnWritten) => void
  ): Promise<StreamEnd> {
    const query = new URLSearchParams([...this.paths].map(path => ['path', path]));
    try {
      const response = await fetchAPI(
        `documents/events?${query}`,
        {
          method: 'GET',
          headers: { Accept: 'text/event-stream' },
          cache: 'no-store',
          signal: this._abort.signal
        },
        settings
      );
      if (!response.ok) {
        const reason = `${response.status} ${response.statusText}`.trim();
        if ([400, 403, 404].includes(response.status)) {
          const body: unknown = await response.json().catch(() => null);
          return {
            kind: 'refused',
            reason: isObject(body) && typeof body.message === 'string' ? body.message : reason,
            path: isObject(body) && typeof body.path === 'string' ? body.path : null
          };
        }
        void response.body?.cancel().catch(() => undefined);
        return { kind: 'failed', error: new Error(reason) };
      }
      await readSSE(
        response,
        message => {
          if (message.event === 'ready') {
            onReady();
          } else if (message.event === 'turn') {
            const written = parseTurnWritten(message.data);
            if (written === null) {
              console.warn('StreamChat: ignoring a malformed turn event', message.data);
            } else {
              onTurn(written);
            }
          }
          return true;
        },
        HandoffTimings.idleTimeout
      );
      return { kind: 'ended' };
    } catch (error) {
      return this._abort.signal.aborted ? { kind: 'ended' } : { kind: 'failed', error };
    }
  }

  private _abort = new AbortController();
  private _ready = false;
  private _ended = false;
}
