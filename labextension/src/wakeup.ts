/**
 * A loop's pause that any change can end early, and that misses no change: a `wake()` while
 * nobody waits ends the next wait at once.
 */
export class Wakeup {
  /** Wait until `promise` settles, `ms` pass, or `wake()` is called (also before this call). */
  wait(promise: Promise<unknown> | null = null, ms: number | null = null): Promise<void> {
    if (this._woken) {
      this._woken = false;
      return Promise.resolve();
    }
    return new Promise<void>(resolve => {
      const timer = ms === null ? undefined : setTimeout(() => done(), ms);
      const done = (): void => {
        if (this._resume === done) {
          this._resume = null;
          clearTimeout(timer);
          resolve();
        }
      };
      this._resume = done;
      promise?.then(done, done);
    });
  }

  wake(): void {
    if (this._resume !== null) {
      this._resume();
    } else {
      this._woken = true;
    }
  }

  private _resume: (() => void) | null = null;
  private _woken = false;
}
