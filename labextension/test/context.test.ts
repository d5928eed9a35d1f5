/**
 * The message's context in the panel (src/mention.ts, src/contextmodel.ts, src/contextview.ts):
 * the `@` list's filtering and keys, chips added and removed, what the Context view shows and
 * the token estimate in all.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { find, installDom } from '../testing/dom';

import { ContextModel } from '../src/contextmodel';
import { ChipsView, ContextView, VariableList } from '../src/contextview';
import {
  completeMention,
  filterVariables,
  IVariable,
  mentionAt,
  VariablePicker
} from '../src/mention';
import { estimateImageTokens, estimateTokens } from '../src/tokens';

installDom();

const VARIABLES: IVariable[] = [
  { name: 'data', type: 'list', shape: '3 items' },
  { name: 'df', type: 'pandas.DataFrame', shape: '3 x 3' },
  { name: 'df_raw', type: 'pandas.DataFrame', shape: '10,000 x 20' },
  { name: 'fig', type: 'matplotlib.Figure', shape: '200×150 px' },
  { name: 'old_df', type: 'pandas.DataFrame', shape: '2 x 2' }
];

/** A PNG's first bytes (signature and IHDR) saying `width` x `height`, as base64. */
function pngHeader(width: number, height: number): string {
  const bytes = Buffer.alloc(33);
  Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(bytes, 0);
  bytes.writeUInt32BE(13, 8);
  bytes.write('IHDR', 12, 'latin1');
  bytes.writeUInt32BE(width, 16);
  bytes.writeUInt32BE(height, 20);
  return bytes.toString('base64');
}

const DF_TEXT = 'df: pandas.DataFrame, 3 rows x 3 columns\n| column | dtype |\n| sales | float64 |';

describe('the @ list (mention.ts)', () => {
  test('When @ starts the text or follows a space, Then the typed word up to the caret is the mention', () => {
    assert.deepEqual(mentionAt('@', 1), { start: 0, end: 1, query: '' });
    assert.deepEqual(mentionAt('why does @d', 11), { start: 9, end: 11, query: 'd' });
    assert.deepEqual(mentionAt('look at\n@df_r', 13), { start: 8, end: 13, query: 'df_r' });
    assert.deepEqual(mentionAt('@café', 5), { start: 0, end: 5, query: 'café' });
  });

  test('When @ is inside a word, an address, or the caret left the word, Then there is no mention', () => {
    assert.equal(mentionAt('mail me@example', 15), null);
    assert.equal(mentionAt('@df is', 6), null);
    assert.equal(mentionAt('@1st', 4), null);
    assert.equal(mentionAt('no mention', 10), null);
  });

  test('When filtered, Then names that start with the word come first, then names that hold it, case-insensitively', () => {
    const names = (query: string): string[] => filterVariables(VARIABLES, query).map(v => v.name);
    assert.deepEqual(names(''), ['data', 'df', 'df_raw', 'fig', 'old_df']);
    assert.deepEqual(names('df'), ['df', 'df_raw', 'old_df']);
    assert.deepEqual(names('DF_'), ['df_raw']);
    assert.deepEqual(names('zz'), []);
  });

  test('When a variable is chosen, Then the typed word is completed and the caret goes after it', () => {
    const text = 'why does @d dip in March?';
    const mention = mentionAt(text, 11);
    assert.ok(mention);
    assert.deepEqual(completeMention(text, mention, 'df'), {
      text: 'why does @df dip in March?',
      caret: 12
    });
    const atEnd = mentionAt('plot @f', 7);
    assert.ok(atEnd);
    assert.deepEqual(completeMention('plot @f', atEnd, 'fig'), { text: 'plot @fig ', caret: 10 });
  });

  test('When ArrowDown/ArrowUp move the active option, Then it wraps at both ends and follows the filter', () => {
    const picker = new VariablePicker();
    picker.follow('@', 1);
    picker.setVariables(VARIABLES);
    assert.equal(picker.active?.name, 'data');

    picker.move(1);
    picker.move(1);
    assert.equal(picker.active?.name, 'df_raw');
    picker.move(-3);
    assert.equal(picker.active?.name, 'old_df', 'up from the first is the last');
    picker.move(1);
    assert.equal(picker.active?.name, 'data', 'down from the last is the first');

    picker.move(2); // df_raw
    picker.follow('@df', 3);
    assert.deepEqual(
      picker.options.map(v => v.name),
      ['df', 'df_raw', 'old_df']
    );
    assert.equal(picker.active?.name, 'df_raw', 'the active one stays while it matches');
    picker.follow('@dfx', 4);
    assert.equal(picker.active, null);
    assert.equal(picker.emptyText, 'No variable matches @dfx.');
    picker.follow('@dfx ', 5);
    assert.equal(picker.isOpen, false, 'a space ends the word and closes the list');
  });

  test('When the variables are being read, Then the list says so, and an empty kernel says it has none', () => {
    const picker = new VariablePicker();
    picker.follow('@', 1);
    picker.setVariables(null);
    assert.deepEqual(picker.note, { kind: 'reading' });
    picker.setNote({ kind: 'waiting', why: 'kernel busy' });
    assert.deepEqual(picker.note, { kind: 'waiting', why: 'kernel busy' });
    picker.setVariables([]);
    assert.equal(picker.note, null);
    assert.equal(picker.emptyText, 'The kernel has no variables yet.');
  });
});

describe('the chips (contextmodel.ts)', () => {
  test('When a variable is picked twice, Then it is one chip; removed, it is gone', () => {
    const model = new ContextModel();
    let changes = 0;
    model.onChange = () => changes++;

    assert.equal(model.addVariable('df'), true);
    assert.equal(model.addVariable('df'), false);
    model.addVariable('fig');
    assert.deepEqual(model.variableNames, ['df', 'fig']);
    assert.equal(model.chips[0].state, 'reading');
    model.remove('variable:df');

    assert.deepEqual(model.variableNames, ['fig']);
    assert.equal(changes, 3);
  });

  test('When the kernel answers, Then each chip gets its item or its one-line error, and the total adds the items up', () => {
    const model = new ContextModel();
    model.addVariable('df');
    model.addVariable('gone');
    model.setCell('cell 2', 'Cell 2 of a.ipynb:\n```\nx = 1\n```');
    const figure = pngHeader(640, 480);
    model.addVariable('fig');

    model.applyItems([
      { name: 'df', item: { kind: 'dataframe', name: 'df', text: DF_TEXT } },
      { name: 'gone', error: "no variable 'gone' in the kernel now" },
      {
        name: 'fig',
        item: {
          kind: 'image',
          name: 'fig',
          text: 'fig: 640×480',
          image: { mime: 'image/png' },
          data: figure
        }
      }
    ]);

    const [df, gone, cell, fig] = model.chips;
    assert.equal(df.state, 'ready');
    assert.equal(model.tokens(df), estimateTokens(DF_TEXT));
    assert.equal(gone.state, 'error');
    assert.equal(gone.message, "no variable 'gone' in the kernel now");
    assert.equal(model.tokens(gone), null);
    assert.equal(cell.item?.kind, 'cell');
    assert.deepEqual(fig.image, { mime: 'image/png', width: 640, height: 480, bytes: 33 });
    assert.equal(model.tokens(fig), estimateTokens('fig: 640×480') + estimateImageTokens(640, 480));
    assert.equal(
      model.totalTokens(),
      (model.tokens(df) ?? 0) + (model.tokens(cell) ?? 0) + (model.tokens(fig) ?? 0)
    );
  });

  test('When a chip is in error or not read yet, Then nothing is sendable and the one line says which', () => {
    const model = new ContextModel();
    model.addVariable('df');
    assert.deepEqual(model.sendable(), {
      error: 'Not sent yet: "df" is not ready (reading it from the kernel).'
    });
    model.waitVariables('kernel busy');
    assert.deepEqual(model.sendable(), { error: 'Not sent yet: "df" is not ready (kernel busy).' });
    model.readVariables();
    assert.equal(model.chips[0].state, 'reading', 'asked now: the waiting chips are being read');
    model.applyItems([{ name: 'df', error: "no variable 'df' in the kernel now" }]);
    assert.deepEqual(model.sendable(), {
      error: 'Not sent: no variable \'df\' in the kernel now. Remove "df" to send without it.'
    });

    model.remove('variable:df');
    assert.deepEqual(model.sendable(), { items: [] });
  });

  test('When outputs are included, Then each image is a chip once; after sending, picked chips clear and the cell stays', () => {
    const model = new ContextModel();
    const outputs = [
      { key: 'c1:0', name: 'cell 1 image 1', mime: 'image/png', data: pngHeader(200, 150) },
      { key: 'c1:2', name: 'cell 1 image 2', mime: 'image/png', data: 'bm90IGFuIGltYWdl' }
    ];
    assert.equal(model.addImages(outputs), 2);
    assert.equal(model.addImages(outputs), 0, 'the same outputs are not added twice');
    const [image, broken] = model.chips;
    assert.equal(image.item?.text, 'cell 1 image 1: 200×150 PNG');
    assert.equal(image.item?.image?.mime, 'image/png');
    assert.equal(broken.state, 'error');
    assert.equal(broken.message, 'cell 1 image 2 is not a PNG, JPEG, GIF or WebP image');
    model.remove(broken.key);
    model.setCell('cell 1', 'Cell 1 of a.ipynb');
    model.addVariable('df');
    model.applyItems([{ name: 'df', item: { kind: 'dataframe', name: 'df', text: DF_TEXT } }]);

    const sent = model.sendable();
    model.clearSent();

    assert.ok('items' in sent);
    assert.deepEqual(
      sent.items.map(i => [i.kind, i.name]),
      [
        ['image', 'cell 1 image 1'],
        ['cell', 'cell 1'],
        ['dataframe', 'df']
      ]
    );
    assert.deepEqual(
      model.chips.map(c => c.key),
      ['cell']
    );
  });
});

describe('the views (contextview.ts)', () => {
  test('When chips show, Then each has a "Remove <name>" button that removes it', () => {
    const model = new ContextModel();
    const view = new ChipsView(chip => model.remove(chip.key));
    model.onChange = () => view.show(model);
    model.addVariable('df');
    model.addVariable('gone');
    model.applyItems([
      { name: 'df', item: { kind: 'dataframe', name: 'df', text: DF_TEXT } },
      { name: 'gone', error: "no variable 'gone' in the kernel now" }
    ]);

    assert.equal(view.node.getAttribute('role'), 'list');
    const gone = find(view.node, '[data-state="error"]');
    assert.match(gone.textContent ?? '', /no variable 'gone' in the kernel now/);
    assert.equal(find(gone, '[role="alert"]').textContent, "no variable 'gone' in the kernel now");
    find<HTMLButtonElement>(view.node, 'button[aria-label="Remove df"]').click();

    assert.deepEqual(model.variableNames, ['gone']);
    assert.equal(view.node.querySelector('button[aria-label="Remove df"]'), null);
  });

  test('When the Context view shows, Then each item shows its text as sent and its estimate, and the summary the total', () => {
    const model = new ContextModel();
    const view = new ContextView();
    model.onChange = () => view.show(model);
    assert.equal(view.node.hidden, true, 'nothing to show without items');
    model.addVariable('df');
    model.applyItems([{ name: 'df', item: { kind: 'dataframe', name: 'df', text: DF_TEXT } }]);
    model.addImages([
      { key: 'c:0', name: 'cell 1 image 1', mime: 'image/png', data: pngHeader(640, 480) }
    ]);

    assert.equal(view.node.getAttribute('aria-label'), 'Context');
    assert.equal(view.node.hidden, false);
    assert.equal(view.node.open, true, 'it opens with its first item');
    const df = find(view.node, 'section[aria-label="df"]');
    assert.equal(find(df, 'pre').textContent, DF_TEXT);
    assert.equal(
      find(df, '.jp-StreamChat-contextItemTokens').textContent,
      `about ${estimateTokens(DF_TEXT)} tokens`
    );
    const image = find(view.node, 'section[aria-label="cell 1 image 1"]');
    assert.equal(
      find(image, '.jp-StreamChat-contextImageSize').textContent,
      '640×480 PNG, 33 bytes'
    );
    assert.ok(find<HTMLImageElement>(image, 'img').src.startsWith('data:image/png;base64,'));
    assert.equal(
      find(view.node, 'summary').textContent,
      `Context: 2 items, about ${model.totalTokens()} tokens`
    );
    assert.equal(view.node.dataset.tokens, String(model.totalTokens()));
  });

  test('When the list is open, Then it is the "Variables" listbox: options named by the variable, type and shape shown, the active one selected', () => {
    const picker = new VariablePicker();
    const chosen: string[] = [];
    const list = new VariableList(variable => chosen.push(variable.name));
    picker.follow('@d', 2);
    picker.setVariables(VARIABLES);
    picker.move(1);
    list.show(picker);

    assert.equal(list.node.hidden, false);
    assert.equal(list.listbox.getAttribute('role'), 'listbox');
    assert.equal(list.listbox.getAttribute('aria-label'), 'Variables');
    const options = Array.from(list.listbox.querySelectorAll('[role="option"]'));
    assert.deepEqual(
      options.map(o => [o.getAttribute('aria-label'), o.textContent]),
      [
        ['data', 'datalist3 items'],
        ['df', 'dfpandas.DataFrame3 x 3'],
        ['df_raw', 'df_rawpandas.DataFrame10,000 x 20'],
        ['old_df', 'old_dfpandas.DataFrame2 x 2']
      ]
    );
    assert.equal(options[1].getAttribute('aria-selected'), 'true');
    assert.equal(list.activeId, options[1].id);
    (options[2] as HTMLElement).click();
    assert.deepEqual(chosen, ['df_raw']);

    picker.setNote({ kind: 'waiting', why: 'kernel busy' });
    list.show(picker);
    assert.equal(
      find(list.node, '[role="status"]').textContent,
      'kernel busy: the list follows when it is idle'
    );
    picker.close();
    list.show(picker);
    assert.equal(list.node.hidden, true);
  });
});
