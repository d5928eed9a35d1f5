/**
 * Server-sent events (the `text/event-stream` format) read from `fetch` responses, and the
 * resumable follow of a run's events (`GET streamchat/runs/{id}/events`, SPEC section 5).
 *
 * Pure: no JupyterLab imports, so the node unit tests (labextension/test) run it against a real
 * HTTP server.
 */

/** One dispatched server-sent event. */
export interface ISSEMessage {
  event: string;
  data: string;
  id: string | null;
}

/**
 * Incremental parser of the `text/event-stream` format (WHATWG HTML, "server-sent events"):
 * lines end in LF, CRLF or CR; a blank line dispatches the event; `:` starts a comment;
 * `data:` lines are joined with LF; a single space after the colon is dropped.
 */
export class SSEParser {
  /** Feed decoded text; returns the events completed by it, in order. */
  push(text: string): ISSEMessage[] {
    const messages: ISSEMessage[] = [];
    if (text === '') {
      return messages;
    }
    // A CR that ended the previous chunk ended its line at once (the event it completes must not
    // wait for the next byte); an LF right after it is the second half of that CRLF.
    if (this._afterCR && text.startsWith('\n')) {
      text = text.slice(1);
    }
    const buffer = this._buffer + text;
    this._afterCR = buffer.endsWith('\r');
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    for (let found = lineEnd.exec(buffer); found !== null; found = lineEnd.exec(buffer)) {
      this._line(buffer.slice(start, found.index), messages);
      start = found.index + found[0].length;
    }
    this._buffer = buffer.slice(start);
    return messages;
  }

  private _line(line: string, messages: ISSEMessage[]): void {
    if (line === '') {
      if (this._data.length > 0) {
        messages.push({
          event: this._event || 'message',
          data: this._data.join('\n'),
          id: this._id
        });
      }
      this._data = [];
      this._event = '';
      return;
    }
    if (line.startsWith(':')) {
      return; // comment (keepalive)
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this._event = value;
        break;
      case 'data':
        this._data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) {
          this._id = value;
        }
        break;
      default:
        break; // `retry` and unknown fields: not used
    }
  }

  private _buffer = '';
  private _afterCR = false;
  private _event = '';
  private _data: string[] = [];
  private _id: string | null = null;
}

/** One event of a run's stream, with its JSON data decoded. */
export interface IRunEvent {
  id: number;
  type: string;
  data: { [key: string]: unknown };
}

/**
 * Read a `text/event-stream` response body to its end, calling `onMessage` for each event
 * (which returns false once it wants no more).
 * Any received byte (a `: ping` too) resets the idle watchdog; a body silent for `idleTimeout`
 * ms is treated as a dead connection and cancelled (the promise then rejects).
 */
export async function readSSE(
  response: Response,
  onMessage: (message: ISSEMessage) => boolean,
  idleTimeout = 0
): Promise<void> {
  if (response.body === null) {
    throw new Error('the event stream has no body');
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  let idle: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const watchdog = (): void => {
    if (idleTimeout > 0) {
      clearTimeout(idle);
      idle = setTimeout(() => {
        timedOut = true;
        void reader.cancel().catch(() => undefined);
      }, idleTimeout);
    }
  };
  watchdog();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        if (timedOut) {
          throw new Error(`the event stream was silent for ${idleTimeout} ms`);
        }
        return;
      }
      watchdog();
      for (const message of parser.push(decoder.decode(value, { stream: true }))) {
        if (onMessage(message) === false) {
          return; // the consumer has all it wants
        }
      }
    }
  } finally {
    clearTimeout(idle);
    void reader.cancel().catch(() => undefined);
  }
}

/** Decode one message of a run's stream; null for a message that is not a run event. */
export function decodeRunEvent(message: ISSEMessage): IRunEvent | null {
  const id = Number(message.id);
  if (!Number.isSafeInteger(id) || id < 0) {
    return null;
  }
  let data: unknown;
  try {
    data = JSON.parse(message.data);
  } catch {
    return null;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return null;
  }
  return { id, type: message.event, data: data as { [key: string]: unknown } };
}

/** An answer that will not change by asking again (unknown run, forbidden, bad request). */
export class StreamRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** Opens the run's event stream after event `lastEventId` (sent as `Last-Event-ID`). */
export type OpenRunStream = (lastEventId: number, signal: AbortSignal) => Promise<Response>;

export interface IFollowOptions {
  /** Reconnect delays in ms, one per consecutive failure; the last repeats. */
  retryDelays?: number[];
  /** Consecutive failed attempts before giving up. */
  maxFailures?: number;
  /** A stream silent (no event, no ping) this long is reconnected; the server pings every 15 s. */
  idleTimeout?: number;
}

const DEFAULT_FOLLOW: Required<IFollowOptions> = {
  retryDelays: [250, 500, 1000, 2000, 4000],
  maxFailures: 20,
  idleTimeout: 45_000
};

/**
 * Follow a detached run until its `done` event: reconnect after a dropped connection with the
 * id of the last event seen, so no event is lost or delivered twice (ids are strictly
 * increasing per run; anything at or below the last id seen is dropped).
 *
 * Resolves `true` after `done`, `false` if `signal` aborted first. Rejects with
 * `StreamRefusedError` on a 4xx answer, or after `maxFailures` consecutive failures.
 */
export async function followRun(
  open: OpenRunStream,
  onEvent: (event: IRunEvent) => void,
  signal: AbortSignal,
  options: IFollowOptions = {},
  lastEventId = 0
): Promise<boolean> {
  const { retryDelays, maxFailures, idleTimeout } = { ...DEFAULT_FOLLOW, ...options };
  let failures = 0;
  let finished = false;
  while (!signal.aborted) {
    let progressed = false;
    try {
      const response = await open(lastEventId, signal);
      if (!response.ok) {
        void response.body?.cancel().catch(() => undefined);
        const reason = `${response.status} ${response.statusText}`.trim();
        if (response.status >= 400 && response.status < 500 && response.status !== 429) {
          throw new StreamRefusedError(response.status, reason);
        }
        throw new Error(reason);
      }
      finished = await readRunStream(
        response,
        event => {
          if (event.id > lastEventId) {
            lastEventId = event.id;
            progressed = true;
            onEvent(event);
          }
        },
        idleTimeout
      );
    } catch (error) {
      if (error instanceof StreamRefusedError) {
        throw error;
      }
      if (signal.aborted) {
        break;
      }
    }
    if (finished) {
      return true;
    }
    if (signal.aborted) {
      break;
    }
    failures = progressed ? 1 : failures + 1;
    if (failures >= maxFailures) {
      throw new Error(`the run's event stream failed ${maxFailures} times in a row`);
    }
    await sleep(retryDelays[Math.min(failures, retryDelays.length) - 1], signal);
  }
  return false;
}

/** Read a direct stream (`POST streamchat/stream`): one response, no resume. */
export async function readRunStream(
  response: Response,
  onEvent: (event: IRunEvent) => void,
  idleTimeout = DEFAULT_FOLLOW.idleTimeout
): Promise<boolean> {
  let finished = false;
  await readSSE(
    response,
    message => {
      const event = decodeRunEvent(message);
      if (event !== null) {
        onEvent(event);
        if (event.type === 'done') {
          finished = true;
          return false;
        }
      }
      return true;
    },
    idleTimeout
  );
  return finished;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
