/**
 * Finished code blocks of a reply: highlighted without the Markdown pipeline, and given a toolbar
 * ("Copy", "Insert cell").
 */

import type { IEditorLanguageRegistry } from '@jupyterlab/codemirror';

import { button, element } from './dom';

/** What the toolbar's buttons do. */
export interface ICodeActions {
  /** Copy text to the system clipboard. */
  copy(text: string): void;
  /** Insert a code cell with `code` below the active cell of the notebook. */
  insertCode(code: string): void;
}

/** How long "Copied" shows on the Copy button (ms). */
const COPIED_FOR = 1500;

/**
 * A finished code block, highlighted as rendermime's Markdown parser does, but built from text
 * nodes and spans: nothing to sanitize. Sanitizing highlighted code (a span per token) cost as much
 * as highlighting it, and both in one task made tasks of 50-90 ms for a 30-line block.
 */
export async function renderCode(
  host: HTMLElement,
  fence: { info: string; code: string },
  languages: IEditorLanguageRegistry
): Promise<void> {
  const language = fence.info.split(/\s/)[0];
  const pre = document.createElement('pre');
  const code = pre.appendChild(document.createElement('code'));
  if (language) {
    code.className = `language-${language.replace(/[^\w+#.-]/g, '')}`;
  }
  host.appendChild(pre);
  try {
    await languages.highlight(fence.code, language ? languages.findBest(language) : null, code);
  } catch (error) {
    code.textContent = fence.code;
    console.warn('StreamChat: could not highlight code', error);
  }
}

/** "Copy" and "Insert cell" on every code block of a rendered block. */
export function addCodeToolbars(block: HTMLElement, actions: ICodeActions): void {
  for (const pre of Array.from(block.querySelectorAll('pre'))) {
    const code = (pre.textContent ?? '').replace(/\n$/, '');
    const bar = element('div', 'jp-StreamChat-codeToolbar');
    const copy = button('Copy', 'Copy this code', () => {
      actions.copy(code);
      copy.textContent = 'Copied';
      setTimeout(() => (copy.textContent = 'Copy'), COPIED_FOR);
    });
    const insert = button(
      'Insert cell',
      'Insert this code as a new cell below the active cell',
      () => actions.insertCode(code)
    );
    bar.append(copy, insert);
    const wrapper = element('div', 'jp-StreamChat-code');
    pre.replaceWith(wrapper);
    wrapper.append(bar, pre);
  }
}
