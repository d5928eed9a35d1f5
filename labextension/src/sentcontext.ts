/**
 * The context a message was sent with, shown on its turn: from the items the panel sent, or from
 * the turn recorded in the notebook (`context`, SPEC 10), so it shows after a reload too.
 */

import { element } from './dom';
import { own } from './metadata';
import { itemTokens, IWireItem } from './tokens';

/** An item as a turn shows it. */
export interface ISentItem {
  kind: string;
  name: string;
  tokens: number | null;
}

/** What the panel sent. */
export function sentItems(items: IWireItem[]): ISentItem[] {
  return items.map(item => ({
    kind: item.kind,
    name: item.name ?? item.kind,
    tokens: itemTokens(item)
  }));
}

/** A recorded turn's `context` (untrusted JSON: anything malformed is left out). */
export function recordedItems(value: unknown): ISentItem[] {
  if (!Array.isArray(value)) {
    return [];
  }
  const items: ISentItem[] = [];
  for (const entry of value) {
    const kind = own(entry, 'kind');
    const name = own(entry, 'name');
    const tokens = own(entry, 'tokens_estimate');
    if (typeof kind === 'string') {
      items.push({
        kind,
        name: typeof name === 'string' && name ? name : kind,
        tokens: typeof tokens === 'number' ? tokens : null
      });
    }
  }
  return items;
}

/** "Context: [df dataframe] [cell 3 cell]" for a turn; none when nothing was sent besides words. */
export function sentContextNodes(items: ISentItem[]): HTMLElement[] {
  if (items.length === 0) {
    return [];
  }
  const node = element('div', 'jp-StreamChat-sentContext', 'Context: ');
  node.setAttribute('role', 'group');
  node.setAttribute('aria-label', 'Context sent');
  for (const item of items) {
    const chip = element('span', 'jp-StreamChat-sentChip', item.name);
    chip.dataset.kind = item.kind;
    chip.title =
      item.tokens === null ? item.kind : `${item.kind}, about ${item.tokens} tokens (estimate)`;
    if (item.name !== item.kind) {
      chip.appendChild(element('span', 'jp-StreamChat-sentChipKind', item.kind));
    }
    node.appendChild(chip);
  }
  return [node];
}
