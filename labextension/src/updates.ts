/**
 * One update loop for every streaming reply of the page (a chat reply, the panes of a comparison).
 *
 * A reply asks for an update when its text changed; the loop renders every waiting reply off the
 * page (`prepare`), then puts them all in on one animation frame (`commit`). So four compare panes
 * cost the browser one frame per update, not four, and no Markdown rendering lengthens a frame.
 *
 * The pace follows a budget: an update's cost (its rendering, plus the frame that shows it) may
 * use at most `budget` (8 %) of the main thread. Where a frame costs 2 ms the page updates every
 * `minInterval` (50 ms: smooth); where it costs 9 ms (chromium rendering in software on a slow
 * machine), every ~110 ms instead of taking a fifth of the main thread. The rest of a stream's cost
 * (reading it, scrolling) comes on top: ~15 % in all there at 200 tokens/s (benchmarks/README.md).
 */

/** What the loop needs from a reply. */
export interface IUpdatable {
  /** Render what changed, off the page; returns what puts it in the page. */
  prepare(): Promise<() => void>;
  /** Update at once, not at the loop's pace (the reply just ended). */
  readonly urgent: boolean;
}

export interface IUpdateLoopOptions {
  /** Share of the main thread the updates may use (0..1). */
  budget?: number;
  /** Least time between two updates (ms). */
  minInterval?: number;
  /** Most time between two updates however slow they are (ms). */
  maxInterval?: number;
  /** Resolves on the next animation frame (injected by tests). */
  nextFrame?: () => Promise<void>;
  /** Resolves once the browser has rendered that frame (injected by tests). */
  afterFrame?: () => Promise<void>;
  now?: () => number;
  setTimer?: (run: () => void, ms: number) => unknown;
  clearTimer?: (timer: unknown) => void;
}

export class UpdateLoop {
  constructor(options: IUpdateLoopOptions = {}) {
    this._budget = options.budget ?? 0.08;
    this._minInterval = options.minInterval ?? 50;
    this._maxInterval = options.maxInterval ?? 250;
    this._nextFrame = options.nextFrame ?? browserNextFrame;
    this._afterFrame = options.afterFrame ?? nextTask;
    this._now = options.now ?? (() => performance.now());
    this._setTimer = options.setTimer ?? ((run, ms) => setTimeout(run, ms));
    this._clearTimer =
      options.clearTimer ?? (timer => clearTimeout(timer as ReturnType<typeof setTimeout>));
  }

  /** Time between updates at the current cost (ms). */
  get interval(): number {
    const interval = this._cost / this._budget;
    return Math.min(this._maxInterval, Math.max(this._minInterval, interval));
  }

  /** Update `view` with the next update (at once if it is urgent). */
  request(view: IUpdatable): void {
    this._waiting.add(view);
    this._plan(view.urgent);
  }

  /** Forget a view that is gone. */
  cancel(view: IUpdatable): void {
    this._waiting.delete(view);
  }

  /** Plan the next update; called on every stream event, so it does as little as it can. */
  private _plan(urgent: boolean): void {
    if (this._running || this._waiting.size === 0) {
      return;
    }
    if (this._timer !== null) {
      if (!urgent || this._timerWait === 0) {
        return; // the planned update will take this view along
      }
      this._clearTimer(this._timer);
    }
    const wait = urgent ? 0 : Math.max(0, this._lastStart + this.interval - this._now());
    this._timerWait = wait;
    this._timer = this._setTimer(() => {
      this._timer = null;
      void this._run();
    }, wait);
  }

  private async _run(): Promise<void> {
    this._running = true;
    this._lastStart = this._now();
    const views = Array.from(this._waiting);
    this._waiting.clear();
    let cost = 0;
    try {
      const commits: (() => void)[] = [];
      for (const view of views) {
        const started = this._now();
        commits.push(await view.prepare());
        cost += this._now() - started;
      }
      await this._nextFrame();
      const frameStarted = this._now();
      for (const commit of commits) {
        try {
          commit();
        } catch (error) {
          console.warn('StreamChat: could not update a reply', error);
        }
      }
      await this._afterFrame();
      cost += this._now() - frameStarted;
    } catch (error) {
      console.warn('StreamChat: could not update a reply', error);
    } finally {
      // A moving average: one slow update (a large code block) does not slow the next ten.
      this._cost = this._cost === 0 ? cost : 0.7 * this._cost + 0.3 * cost;
      this._running = false;
      // Requests made meanwhile waited for this update to end.
      this._plan(Array.from(this._waiting).some(view => view.urgent));
    }
  }

  private readonly _budget: number;
  private readonly _minInterval: number;
  private readonly _maxInterval: number;
  private readonly _nextFrame: () => Promise<void>;
  private readonly _afterFrame: () => Promise<void>;
  private readonly _now: () => number;
  private readonly _setTimer: (run: () => void, ms: number) => unknown;
  private readonly _clearTimer: (timer: unknown) => void;
  private readonly _waiting = new Set<IUpdatable>();
  private _timer: unknown = null;
  private _timerWait = 0;
  private _running = false;
  private _cost = 0;
  /** When the last update began: updates begin every `interval` ms, their cost included. */
  private _lastStart = -Infinity;
}

function browserNextFrame(): Promise<void> {
  return new Promise(resolve => requestAnimationFrame(() => resolve()));
}

/** A task after the current one: run from an animation frame, after the browser rendered it. */
function nextTask(): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, 0));
}

/**
 * Long work split in slices: `maybeYield()` lets the browser run other tasks (input, a frame) once
 * the current slice took `sliceMs`. Yields through `scheduler.yield()` or a message, not a timer:
 * chained timers are clamped to 4 ms each, which made a long history take seconds to show.
 */
export class Slicer {
  constructor(private readonly _sliceMs = 10) {}

  async maybeYield(): Promise<void> {
    if (performance.now() - this._sliceStart >= this._sliceMs) {
      await yieldToBrowser();
      this._sliceStart = performance.now();
    }
  }

  private _sliceStart = performance.now();
}

function yieldToBrowser(): Promise<void> {
  const scheduler = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler;
  if (scheduler?.yield) {
    return scheduler.yield();
  }
  return new Promise(resolve => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}
