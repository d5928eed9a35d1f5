/**
 * The panel's parts (src/composer.ts, src/modebar.ts, src/chatsection.ts) in a DOM (jsdom): the
 * keys and controls a user meets, and what each shows for the panel's state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { buttonsNamed, find, installDom, press } from '../testing/dom';

import { ChatSection } from '../src/chatsection';
import { Composer, IComposerState } from '../src/composer';
import { ModeBar, PanelMode } from '../src/modebar';

installDom();

function composer(takeKeys: string[] = []): { composer: Composer; asked: string[] } {
  const asked: string[] = [];
  const made = new Composer({
    send: () => asked.push('send'),
    stop: () => asked.push('stop'),
    edited: () => asked.push('edited'),
    toggleContext: () => asked.push('toggleContext'),
    includeOutputs: () => asked.push('includeOutputs'),
    keydown: event => takeKeys.includes(event.key),
    caretMoved: () => asked.push('caretMoved'),
    blurred: () => asked.push('blurred')
  });
  return { composer: made, asked };
}

function textarea(node: HTMLElement): HTMLTextAreaElement {
  return find<HTMLTextAreaElement>(node, 'textarea[aria-label="Message"]');
}

function button(node: HTMLElement, label: string): HTMLButtonElement {
  const [found] = buttonsNamed(node, label);
  assert.ok(found, `a button named ${label}`);
  return found;
}

const IDLE: IComposerState = {
  compare: false,
  streaming: false,
  hasModels: true,
  includeContext: false
};

describe('Composer', () => {
  test('When Enter is pressed in the message, Then it sends and no newline is added', () => {
    const { composer: made, asked } = composer();

    const event = press(textarea(made.node), 'Enter');

    assert.deepEqual(asked, ['send']);
    assert.equal(event.defaultPrevented, true);
  });

  test('When Shift+Enter is pressed, Then it does not send and the newline goes in', () => {
    const { composer: made, asked } = composer();

    const event = press(textarea(made.node), 'Enter', { shiftKey: true });

    assert.deepEqual(asked, []);
    assert.equal(event.defaultPrevented, false);
  });

  test('When Enter picks a candidate of an input method, Then it does not send', () => {
    const { composer: made, asked } = composer();

    const event = press(textarea(made.node), 'Enter', { isComposing: true });

    assert.deepEqual(asked, []);
    assert.equal(event.defaultPrevented, false);
  });

  test('When the message is typed, Then the panel hears of it and Send is enabled only with text and models', () => {
    const { composer: made, asked } = composer();
    const input = textarea(made.node);
    made.show(IDLE);
    assert.equal(button(made.node, 'Send').disabled, true, 'nothing to send yet');

    input.value = '  What does cell 3 do?  ';
    input.dispatchEvent(new Event('input', { bubbles: true }));
    made.show(IDLE);

    assert.deepEqual(asked, ['edited', 'caretMoved']);
    assert.equal(made.message, 'What does cell 3 do?');
    assert.equal(button(made.node, 'Send').disabled, false);
    made.show({ ...IDLE, hasModels: false });
    assert.equal(button(made.node, 'Send').disabled, true, 'no model to send to');
    made.clear();
    made.show(IDLE);
    assert.equal(made.message, '');
    assert.equal(button(made.node, 'Send').disabled, true);
  });

  test('When a chat reply streams, Then Stop shows (and Stop all does not) and Stop stops', () => {
    const { composer: made, asked } = composer();
    made.show(IDLE);
    assert.equal(button(made.node, 'Stop').hidden, true);
    assert.equal(button(made.node, 'Stop all').hidden, true);

    made.show({ ...IDLE, streaming: true });
    button(made.node, 'Stop').click();

    assert.equal(button(made.node, 'Stop').hidden, false);
    assert.equal(button(made.node, 'Stop all').hidden, true);
    assert.deepEqual(asked, ['stop']);
  });

  test('When compare panes stream, Then Stop all shows instead of Stop', () => {
    const { composer: made, asked } = composer();

    made.show({ ...IDLE, compare: true, streaming: true });
    button(made.node, 'Stop all').click();

    assert.equal(button(made.node, 'Stop').hidden, true);
    assert.equal(button(made.node, 'Stop all').hidden, false);
    assert.deepEqual(asked, ['stop']);
  });

  test('When the active cell is included, Then its button is pressed; Include outputs asks the panel', () => {
    const { composer: made, asked } = composer();
    button(made.node, 'Include active cell').click();
    button(made.node, 'Include outputs').click();
    assert.deepEqual(asked, ['toggleContext', 'includeOutputs']);

    made.show({ ...IDLE, includeContext: true });
    assert.equal(button(made.node, 'Include active cell').getAttribute('aria-pressed'), 'true');
    made.show(IDLE);
    assert.equal(button(made.node, 'Include active cell').getAttribute('aria-pressed'), 'false');
  });

  test('When the panel takes a key (the @ list is open), Then Enter does not send', () => {
    const { composer: made, asked } = composer(['Enter']);

    const event = press(textarea(made.node), 'Enter');

    assert.deepEqual(asked, []);
    assert.equal(event.defaultPrevented, false, 'the panel decides what the key does');
  });

  test('When the caret moves by a key or a click, Then the panel hears of it; a typed key does not count twice', () => {
    const { composer: made, asked } = composer();
    const input = textarea(made.node);

    input.dispatchEvent(new KeyboardEvent('keyup', { key: 'ArrowLeft', bubbles: true }));
    input.dispatchEvent(new KeyboardEvent('keyup', { key: 'a', bubbles: true }));
    input.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    input.dispatchEvent(new Event('blur'));

    assert.deepEqual(asked, ['caretMoved', 'caretMoved', 'blurred']);
  });
});

describe('ModeBar', () => {
  test('When a mode is chosen, Then the panel is asked for it and the pressed button follows the mode', () => {
    const modes: PanelMode[] = [];
    let fresh = 0;
    const bar = new ModeBar({
      setMode: mode => modes.push(mode),
      newConversation: () => (fresh += 1)
    });

    button(bar.node, 'Compare').click();
    button(bar.node, 'New conversation').click();
    bar.show('compare');

    assert.deepEqual(modes, ['compare']);
    assert.equal(fresh, 1);
    assert.equal(button(bar.node, 'Compare').getAttribute('aria-pressed'), 'true');
    assert.equal(button(bar.node, 'Chat').getAttribute('aria-pressed'), 'false');
    assert.equal(
      button(bar.node, 'New conversation').hidden,
      true,
      'no conversation in compare mode'
    );
    bar.show('chat');
    assert.equal(button(bar.node, 'New conversation').hidden, false);
  });
});

describe('ChatSection', () => {
  test('When conversations are offered, Then the picker lists them with the current one selected, and a pick is passed on', () => {
    const picked: string[] = [];
    const section = new ChatSection({
      conversation: id => picked.push(id),
      steering: () => undefined,
      export: () => undefined,
      insertCells: () => undefined
    });
    const select = find<HTMLSelectElement>(section.node, 'select[aria-label="Conversation"]');
    const conversations = [
      { id: 'c2', label: 'Why is it slow? (2)' },
      { id: 'c1', label: 'Plot this (1)' }
    ];

    section.showConversations(conversations, 'c1');
    const options = Array.from(select.options);
    const selected = select.value;
    section.showConversations([...conversations], 'c1');
    select.value = 'c2';
    select.dispatchEvent(new Event('change'));

    assert.deepEqual(
      options.map(o => [o.value, o.textContent]),
      [
        ['c2', 'Why is it slow? (2)'],
        ['c1', 'Plot this (1)']
      ]
    );
    assert.equal(selected, 'c1');
    assert.equal(select.options[0], options[0], 'the same list is not rebuilt');
    assert.deepEqual(picked, ['c2']);
    assert.ok(find(section.node, 'select[aria-label="Model"]') === section.modelSelect);
  });
});
