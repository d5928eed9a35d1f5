/**
 * Small helpers shared by the panel's modules. Pure: unit tested in node.
 */

/** An object read from JSON (not an array, not null); its keys are data: read them with `own`. */
export type Dict = { [key: string]: unknown };

/** The one test for "a JSON object" in this extension. */
export function isObject(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The first line of a (server's) message: a refusal is shown as one line. */
export function firstLine(text: string): string {
  return text.trim().split(/\r?\n/, 1)[0];
}

/** `text` on one line of at most `max` characters (an ellipsis marks the cut). */
export function oneLine(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim() || '(empty)';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
