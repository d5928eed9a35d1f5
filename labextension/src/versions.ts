/**
 * File versions as Jupyter's contents API reports them, compared the way JupyterLab's save
 * compares them before it asks "File Changed" (docregistry's `Context._maybeSave`).
 */

/** A file version: `GET /api/contents/<path>?content=0&hash=1` without the content. */
export interface IFileVersion {
  hash?: string | null;
  hash_algorithm?: string | null;
  last_modified?: string | null;
}

/**
 * Whether `known` (the version a page last loaded or saved) is `version`: by hash when both have
 * one, else by modification time to the millisecond (what a `Date` keeps of it).
 */
export function sameVersion(known: IFileVersion | null, version: IFileVersion | null): boolean {
  if (known === null || version === null) {
    return false;
  }
  if (known.hash && version.hash) {
    return (
      known.hash === version.hash &&
      (known.hash_algorithm ?? null) === (version.hash_algorithm ?? null)
    );
  }
  if (!known.last_modified || !version.last_modified) {
    return false;
  }
  const a = new Date(known.last_modified).getTime();
  const b = new Date(version.last_modified).getTime();
  return !Number.isNaN(a) && a === b;
}
