/**
 * Small helpers shared by the panel's modules. Pure: unit tested in node.
 */

/** An object read from JSON (not an array, not null); its keys are data: read them with `own`. */
export type Dict = { [key: string]: unknown };

/** The one test for "a JSON object" in this extension. */
export function isObject(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
