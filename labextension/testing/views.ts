/**
 * What the view tests give a reply in place of JupyterLab's page: a Markdown renderer (rendermime
 * does not load outside a browser) that renders a code fence as `<pre>` and anything else as a
 * paragraph of text, and records what it rendered; the clipboard and the notebook as records.
 */

import type { ICompareContext } from '../src/compare';

export interface IViewRecord {
  /** Every Markdown source rendered, in order. */
  rendered: string[];
  copied: string[];
  insertedCode: string[];
  insertedMarkdown: string[];
}

export function viewContext(notebook: string | null = null): {
  context: ICompareContext;
  record: IViewRecord;
} {
  const record: IViewRecord = { rendered: [], copied: [], insertedCode: [], insertedMarkdown: [] };
  const context: ICompareContext = {
    renderMarkdown: async (host, source) => {
      record.rendered.push(source);
      const fence = /^```[^\n]*\n([\s\S]*?)\n?```\s*$/.exec(source.trim());
      if (fence !== null) {
        const pre = host.appendChild(host.ownerDocument.createElement('pre'));
        pre.textContent = fence[1];
      } else {
        host.appendChild(host.ownerDocument.createElement('p')).textContent = source.trim();
      }
    },
    languages: null,
    copy: text => record.copied.push(text),
    insertCode: code => record.insertedCode.push(code),
    insertMarkdown: text => record.insertedMarkdown.push(text),
    notebookPath: () => notebook
  };
  return { context, record };
}

/**
 * Resolves once `holds()` is true, checked now and after every change under `root` (a DOM
 * mutation): the tests wait on what the page shows, never on time.
 */
export function until(root: Node, holds: () => boolean): Promise<void> {
  if (holds()) {
    return Promise.resolve();
  }
  return new Promise(resolve => {
    const observer = new MutationObserver(() => {
      if (holds()) {
        observer.disconnect();
        resolve();
      }
    });
    observer.observe(root, {
      subtree: true,
      childList: true,
      attributes: true,
      characterData: true
    });
  });
}
