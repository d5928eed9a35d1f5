/**
 * A DOM for the view tests: jsdom's window, its globals as the views use them (`document`,
 * `requestAnimationFrame`, events), and the page config a Jupyter page carries, with `baseUrl`
 * pointing at the test's own server. Kept outside test/: node's runner runs every file there.
 */

import { PageConfig } from '@jupyterlab/coreutils';
import { JSDOM } from 'jsdom';

let dom: JSDOM | null = null;

/** The globals the views read; jsdom's `window` provides each. */
const GLOBALS = [
  'window',
  'document',
  'Node',
  'Element',
  'HTMLElement',
  'HTMLButtonElement',
  'Event',
  'KeyboardEvent',
  'MouseEvent',
  'MutationObserver',
  'requestAnimationFrame',
  'cancelAnimationFrame'
] as const;

/** Give this process a DOM (once); `baseUrl` is where the extension's requests go. */
export function installDom(baseUrl = 'http://127.0.0.1:9/'): JSDOM {
  if (dom === null) {
    dom = new JSDOM('<!doctype html><html><body></body></html>', {
      pretendToBeVisual: true, // requestAnimationFrame, which the page's update loop awaits
      url: 'http://127.0.0.1/lab'
    });
    const window = dom.window as unknown as Record<string, unknown>;
    const target = globalThis as unknown as Record<string, unknown>;
    for (const name of GLOBALS) {
      const value = window[name];
      target[name] =
        typeof value === 'function' && /^[a-z]/.test(name)
          ? (value as () => void).bind(window)
          : value;
    }
  }
  PageConfig.setOption('baseUrl', baseUrl);
  PageConfig.setOption('token', 'test-token');
  return dom;
}

/** Press a key on `target` as a user does (bubbling, cancelable); returns the event. */
export function press(
  target: EventTarget,
  key: string,
  options: { shiftKey?: boolean; isComposing?: boolean } = {}
): KeyboardEvent {
  const event = new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true, ...options });
  target.dispatchEvent(event);
  return event;
}

/** The element matching `selector` under `root`; fails the test if there is none. */
export function find<T extends Element = HTMLElement>(root: ParentNode, selector: string): T {
  const found = root.querySelector<T>(selector);
  if (found === null) {
    throw new Error(`nothing matches ${selector}`);
  }
  return found;
}

/** The buttons under `root` whose text is exactly `label`. */
export function buttonsNamed(root: ParentNode, label: string): HTMLButtonElement[] {
  return Array.from(root.querySelectorAll('button')).filter(b => b.textContent === label);
}
