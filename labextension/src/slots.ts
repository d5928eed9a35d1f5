/**
 * Slots for long-lived streams (SSE) to the Jupyter server.
 *
 * A stream holds an HTTP connection for as long as it is open. Over HTTP/1.1 (Jupyter Server's
 * default) browsers allow 6 connections per host -- for all tabs of the browser profile
 * together, not per page. Once streams hold all 6, every other request of JupyterLab (contents,
 * saves, sessions, kernel REST calls) waits forever, and Lab hangs. So every stream this
 * extension keeps open must hold a slot: at most `STREAM_SLOTS` for the whole origin (all tabs,
 * through the Web Locks API), which leaves connections for JupyterLab itself. Where Web Locks are
 * missing (pages served over plain HTTP from a non-local host are not a secure context), the
 * slots are counted per page.
 */

/**
 * Streams the whole origin may keep open at once. The budget is the browser's 6 connections per
 * host: one hand-off stream per tab (handoff.ts: one for all the notebooks the tab has open; two
 * for a moment while it resubscribes), plus the side panel's streams (its chat stream, and one per
 * compare pane, up to 4), and one connection always left for JupyterLab's own requests.
 */
export const STREAM_SLOTS = 5;

/** Give a slot back (idempotent). */
export type ReleaseSlot = () => void;

const LOCK_PREFIX = 'jupyter-streamchat:stream-slot-';

let pageSlotsInUse = 0;

/** Take a free slot now, or null if all are taken. Hold it while the stream is open. */
export async function tryAcquireStreamSlot(): Promise<ReleaseSlot | null> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  if (locks === undefined || locks === null) {
    if (pageSlotsInUse >= STREAM_SLOTS) {
      return null;
    }
    pageSlotsInUse += 1;
    return once(() => {
      pageSlotsInUse -= 1;
    });
  }
  for (let slot = 0; slot < STREAM_SLOTS; slot++) {
    const release = await tryLock(locks, `${LOCK_PREFIX}${slot}`);
    if (release !== null) {
      return release;
    }
  }
  return null;
}

/** Hold the named lock if it is free now (released by the returned function), else null. */
function tryLock(locks: LockManager, name: string): Promise<ReleaseSlot | null> {
  return new Promise<ReleaseSlot | null>(resolve => {
    locks
      .request(name, { ifAvailable: true }, lock => {
        if (lock === null) {
          resolve(null);
          return undefined;
        }
        // The lock is held until this promise settles, i.e. until the slot is released (or the
        // page goes away: the browser then releases it).
        return new Promise<void>(done => resolve(once(done)));
      })
      .catch(() => resolve(null));
  });
}

function once(action: () => void): ReleaseSlot {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      action();
    }
  };
}

/** How often a stream waiting for a slot tries again (ms). */
const SLOT_RETRY = 500;

/**
 * Run `stream` while holding a slot, waiting for one if all are taken (streams of other tabs or
 * panes end, or the user stops them). Resolves undefined if `signal` aborts while waiting.
 */
export async function withStreamSlot<T>(
  signal: AbortSignal,
  stream: () => Promise<T>,
  onWaiting?: () => void
): Promise<T | undefined> {
  let release = await tryAcquireStreamSlot();
  while (release === null) {
    onWaiting?.();
    await new Promise(resolve => setTimeout(resolve, SLOT_RETRY));
    if (signal.aborted) {
      return undefined;
    }
    release = await tryAcquireStreamSlot();
  }
  try {
    return await stream();
  } finally {
    release();
  }
}
