/**
 * One turn's controls (src/turnview.ts) and the conversation's parameters form (src/chatsection.ts)
 * in a DOM (jsdom): what each button asks the chat for, and what the user sees.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { buttonsNamed, find, installDom, press } from '../testing/dom';
import { viewContext } from '../testing/views';

import { ChatSection } from '../src/chatsection';
import { ReplyView } from '../src/reply';
import { TurnView } from '../src/turnview';

installDom();

function turnView(prompt = 'What is a kernel?'): { view: TurnView; asked: string[] } {
  const asked: string[] = [];
  const view = new TurnView(prompt, [], new ReplyView(viewContext().context), {
    edit: text => asked.push(`edit:${text}`),
    regenerate: () => asked.push('regenerate'),
    replay: () => asked.push('replay'),
    alternative: step => asked.push(`alternative:${step}`)
  });
  return { view, asked };
}

function byLabel(root: ParentNode, label: string): HTMLButtonElement {
  return find<HTMLButtonElement>(root, `button[aria-label="${label}"]`);
}

describe('TurnView', () => {
  test('When a turn has one alternative, Then no arrows show; with three, "2 / 3" and both arrows work', () => {
    const { view, asked } = turnView();
    view.setAlternatives(0, 1);
    const nav = find(view.node, '.jp-StreamChat-alternatives');
    assert.equal(nav.hidden, true);

    view.setAlternatives(1, 3);
    byLabel(view.node, 'Previous alternative').click();
    byLabel(view.node, 'Next alternative').click();

    assert.equal(nav.hidden, false);
    assert.equal(find(view.node, '.jp-StreamChat-position').textContent, '2 / 3');
    assert.deepEqual(asked, ['alternative:-1', 'alternative:1']);
    view.setAlternatives(2, 3);
    assert.equal(byLabel(view.node, 'Next alternative').disabled, true, 'the last has no next');
    assert.equal(byLabel(view.node, 'Previous alternative').disabled, false);
  });

  test('When the user edits the prompt and presses Enter, Then the edited text is sent and the prompt shows again', () => {
    const { view, asked } = turnView();
    buttonsNamed(view.node, 'Edit')[0].click();
    const input = find<HTMLTextAreaElement>(view.node, 'textarea[aria-label="Edited prompt"]');
    assert.equal(input.value, 'What is a kernel?', 'the edit starts from the prompt');
    input.value = 'What is a Jupyter kernel?';
    press(input, 'Enter');

    assert.deepEqual(asked, ['edit:What is a Jupyter kernel?']);
    assert.equal(view.node.querySelector('textarea'), null);
    assert.equal(find(view.node, '.jp-StreamChat-prompt').textContent, 'What is a kernel?');
  });

  test('When the user cancels an edit (Escape), Then nothing is sent and Escape goes no further', () => {
    const { view, asked } = turnView();
    let escapes = 0;
    view.node.addEventListener('keydown', () => (escapes += 1));
    buttonsNamed(view.node, 'Edit')[0].click();
    const input = find<HTMLTextAreaElement>(view.node, 'textarea');
    input.value = 'changed';
    press(input, 'Escape');

    assert.deepEqual(asked, []);
    assert.equal(escapes, 0, 'the panel does not see it (Escape there stops a reply)');
    assert.equal(view.node.querySelector('textarea'), null);
  });

  test('When an edit is emptied, Then Send edited prompt sends nothing', () => {
    const { view, asked } = turnView();
    buttonsNamed(view.node, 'Edit')[0].click();
    find<HTMLTextAreaElement>(view.node, 'textarea').value = '  ';
    buttonsNamed(view.node, 'Send edited prompt')[0].click();
    assert.deepEqual(asked, []);
  });

  test('When Regenerate and Replay are pressed, Then the chat is asked; a reply not ended offers no Replay', () => {
    const { view, asked } = turnView();
    view.setEnabled({ regenerate: true, edit: true, replay: false });
    assert.equal(buttonsNamed(view.node, 'Replay')[0].hidden, true);
    view.setEnabled({ regenerate: true, edit: true, replay: true });
    buttonsNamed(view.node, 'Regenerate')[0].click();
    buttonsNamed(view.node, 'Replay')[0].click();
    view.showNote('Replay: same messages');

    assert.deepEqual(asked, ['regenerate', 'replay']);
    assert.equal(find(view.node, '.jp-StreamChat-replayNote').textContent, 'Replay: same messages');
  });
});

describe('ChatSection parameters', () => {
  test('When a conversation with recorded parameters is shown, Then the form shows them and reads back what is typed', () => {
    let edits = 0;
    const section = new ChatSection({
      conversation: () => undefined,
      steering: () => (edits += 1),
      export: () => undefined,
      insertCells: () => undefined
    });
    section.setSteering({ system: 'Be brief.', temperature: '0.2', maxTokens: '' });
    const temperature = find<HTMLInputElement>(section.node, 'input[aria-label="Temperature"]');
    temperature.value = '5';
    temperature.dispatchEvent(new Event('input'));

    assert.deepEqual(section.steering, { system: 'Be brief.', temperature: '5', maxTokens: '' });
    assert.equal(edits, 1);
    assert.equal(find<HTMLDetailsElement>(section.node, 'details').open, true);
    assert.ok(find(section.node, 'textarea[aria-label="System prompt"]'));
    assert.ok(find(section.node, 'input[aria-label="Max tokens"]'));
  });

  test('When there is no branch, Then Export and Insert as cells are disabled and no total shows', () => {
    const section = new ChatSection({
      conversation: () => undefined,
      steering: () => undefined,
      export: () => undefined,
      insertCells: () => undefined
    });
    section.showTotal(
      { replies: 0, inputTokens: 0, outputTokens: 0, cost: null, priced: 0 },
      false
    );
    assert.equal(buttonsNamed(section.node, 'Export')[0].disabled, true);
    assert.equal(buttonsNamed(section.node, 'Insert as cells')[0].disabled, true);
    assert.equal(find(section.node, '.jp-StreamChat-total').hidden, true);
  });
});
