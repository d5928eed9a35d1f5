/**
 * A conversation as a tree (SPEC 11): turns follow their `parent`; the replies that share a parent
 * are alternatives (a regenerated reply, or an edited prompt); the branch that ends at the active
 * leaf is what the panel shows and what the next prompt follows.
 *
 * The panel's tree mixes turns recorded in the notebook with runs of this page not recorded yet
 * (and requests the server has not named yet, keyed locally): a node's `parent` is a run id, and a
 * `parent` that names no node of the tree makes its node the first of its branch, as
 * `metadata.ts` `branch` reads it.
 *
 * Pure (no DOM): unit tested in node.
 */

/** What the tree needs to know of a turn. */
export interface ITreeNode {
  /** Unique in the tree: the run id, or a local key while the server has not named the run. */
  readonly key: string;
  /** The run id, once known (only named runs can be parents). */
  readonly run: string | null;
  /** The run id this turn follows; null: it starts the conversation. */
  readonly parent: string | null;
  /** ISO-8601; alternatives are ordered by it (ties: in the order given). */
  readonly created: string;
}

/** Where one turn of the shown branch stands among its alternatives. */
export interface IAlternatives<T> {
  /** The turns that share its parent, oldest first (the turn itself among them). */
  siblings: T[];
  /** Its index in `siblings`. */
  index: number;
}

export class ConversationTree<T extends ITreeNode> {
  constructor(nodes: readonly T[]) {
    this._nodes = [...nodes];
    this._order = new Map(this._nodes.map((node, index) => [node.key, index]));
    for (const node of this._nodes) {
      this._byKey.set(node.key, node);
      if (node.run !== null) {
        this._byRun.set(node.run, node);
      }
    }
    for (const node of this._nodes) {
      const parent = this._parentKey(node);
      const list = this._children.get(parent) ?? [];
      list.push(node);
      this._children.set(parent, list);
    }
    for (const list of this._children.values()) {
      list.sort((a, b) => this._compare(a, b));
    }
  }

  get size(): number {
    return this._nodes.length;
  }

  get(key: string): T | undefined {
    return this._byKey.get(key);
  }

  /** The node of run `run`, if the tree has it. */
  byRun(run: string): T | undefined {
    return this._byRun.get(run);
  }

  /** The newest node (by `created`): the leaf a conversation without an `active` shows. */
  newest(): T | null {
    let newest: T | null = null;
    for (const node of this._nodes) {
      if (newest === null || this._compare(node, newest) >= 0) {
        newest = node;
      }
    }
    return newest;
  }

  /** The turns from the first down to `leaf` (a key; unknown or null: none). */
  branch(leaf: string | null): T[] {
    const path: T[] = [];
    const seen = new Set<string>();
    let node = leaf === null ? undefined : this._byKey.get(leaf);
    while (node !== undefined && !seen.has(node.key)) {
      seen.add(node.key);
      path.push(node);
      node = node.parent === null ? undefined : this._byRun.get(node.parent);
    }
    return path.reverse();
  }

  /** `node`'s alternatives: the turns that follow the same turn (or, for first turns, start it). */
  alternatives(node: T): IAlternatives<T> {
    const siblings = this._children.get(this._parentKey(node)) ?? [node];
    return { siblings, index: Math.max(0, siblings.indexOf(node)) };
  }

  /**
   * The leaf to show when the user switches to `node`: the newest turn of its subtree (a turn is
   * always older than the turns that follow it, so that is a leaf), i.e. where they were last.
   */
  leafUnder(node: T): T {
    let newest = node;
    const stack = [node];
    while (stack.length > 0) {
      const current = stack.pop()!;
      if (this._compare(current, newest) > 0) {
        newest = current;
      }
      if (current.run !== null) {
        stack.push(...(this._children.get(`run:${current.run}`) ?? []));
      }
    }
    return newest;
  }

  /** The nearest named run of `branch`, from its end: what a new turn after it follows. */
  static lastRun(branch: readonly ITreeNode[]): string | null {
    for (let index = branch.length - 1; index >= 0; index--) {
      const run = branch[index].run;
      if (run !== null) {
        return run;
      }
    }
    return null;
  }

  /** Children are grouped by their parent's run, or as first turns when it names no node. */
  private _parentKey(node: T): string {
    return node.parent !== null && this._byRun.has(node.parent) ? `run:${node.parent}` : 'root';
  }

  private _compare(a: T, b: T): number {
    if (a.created !== b.created) {
      return a.created < b.created ? -1 : 1;
    }
    return (this._order.get(a.key) ?? 0) - (this._order.get(b.key) ?? 0);
  }

  private _nodes: T[];
  private _order: Map<string, number>;
  private _byKey = new Map<string, T>();
  private _byRun = new Map<string, T>();
  private _children = new Map<string, T[]>();
}

/**
 * Which leaf a page shows per conversation: the document's `active`, unless the page chose another
 * (a run it started that is not recorded yet, or an alternative the document could not take). When
 * the document's `active` changes (a turn recorded, a switch, another page), it wins again, except
 * over a chosen turn that is not recorded yet (`recorded` says which are).
 */
export class LeafChoice<T extends ITreeNode> {
  constructor(private readonly _recorded: (node: T) => boolean) {}

  /** The page shows `key` as `conversation`'s leaf. */
  choose(conversation: string, key: string): void {
    this._chosen.set(conversation, key);
  }

  /** A node's key changed (the server named its run). */
  rekey(from: string, to: string): void {
    for (const [conversation, key] of this._chosen) {
      if (key === from) {
        this._chosen.set(conversation, to);
      }
    }
  }

  /** The key of the leaf to show, given the document's `active` (null: none). */
  leaf(conversation: string, active: string | null, tree: ConversationTree<T>): string | null {
    if (!this._seen.has(conversation) || this._seen.get(conversation) !== active) {
      this._seen.set(conversation, active);
      const chosen = tree.get(this._chosen.get(conversation) ?? '');
      if (chosen === undefined || this._recorded(chosen)) {
        this._chosen.delete(conversation);
      }
    }
    const chosen = this._chosen.get(conversation);
    if (chosen !== undefined && tree.get(chosen) !== undefined) {
      return chosen;
    }
    const recorded = active === null ? undefined : tree.byRun(active);
    return recorded?.key ?? tree.newest()?.key ?? null;
  }

  private _chosen = new Map<string, string>();
  /** Per conversation: the document's `active` as last seen. */
  private _seen = new Map<string, string | null>();
}
