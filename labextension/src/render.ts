/**
 * Rendering of model output through JupyterLab's rendermime: Markdown (sanitized, math typeset),
 * then every URL that would load something taken out (remote.ts) before any of it reaches the page.
 * The reply view (reply.ts) gets this as `IReplyContext.renderMarkdown`, so that its own logic
 * needs no rendermime (and runs in unit tests).
 */

import { IRenderMimeRegistry, renderMarkdown } from '@jupyterlab/rendermime';

import { blockRemoteResources, inertElement } from './remote';

/**
 * Model output is untrusted: rendered as Markdown through rendermime, with its sanitizer, into
 * `host`, an element of an inert document (remote.ts); math is typeset there too, and then every URL
 * that would load something is taken out, before any of it reaches the page.
 */
export async function renderUntrusted(
  rendermime: IRenderMimeRegistry,
  host: HTMLElement,
  source: string
): Promise<void> {
  await renderMarkdown({
    host,
    source,
    trusted: false,
    sanitizer: rendermime.sanitizer,
    resolver: rendermime.resolver,
    linkHandler: rendermime.linkHandler,
    // Typeset below, awaited: left to renderMarkdown it ends after the render, out of our sight.
    shouldTypeset: false,
    latexTypesetter: rendermime.latexTypesetter,
    markdownParser: rendermime.markdownParser
  });
  await rendermime.latexTypesetter?.typeset(host);
  blockRemoteResources(host);
}

/**
 * Load and compile what rendering a reply needs (the Markdown parser, the sanitizer, the math
 * typesetter, a Python highlighter) once, while the page is idle. Left to the first reply, this
 * work makes tasks of 40-50 ms in its first seconds.
 */
export function warmUp(rendermime: IRenderMimeRegistry): void {
  if (warmedUp) {
    return;
  }
  warmedUp = true;
  const sample =
    '# A\n\n*b* $c$\n\n| d | e |\n|---|---|\n| 1 | 2 |\n\n```python\ndef f(x):\n    return x\n```\n';
  const whenIdle = window.requestIdleCallback ?? ((run: () => void) => setTimeout(run, 500));
  whenIdle(
    () => void renderUntrusted(rendermime, inertElement('div'), sample).catch(() => undefined),
    { timeout: 2000 }
  );
}

let warmedUp = false;
