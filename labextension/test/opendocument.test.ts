/**
 * The hand-off's decisions for one open notebook (src/opendocument.ts) when the server wrote a
 * turn into its file: adopt the new version or reload when nothing unsaved is at stake, merge and
 * keep the user's edits when something is, skip a run it already holds, wait for a save in flight.
 * The notebook is testing/documents.ts's document context, with its file beside it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Signal } from '@lumino/signaling';

import { installDom } from '../testing/dom';
import { DocumentContext, SERVER_DRIVE, version } from '../testing/documents';

import { hasTurn, ITurn, METADATA_KEY, mergeTurn } from '../src/metadata';
import { DocumentHandoff } from '../src/opendocument';
import { ITurnWritten, parseTurnWritten } from '../src/turnwritten';
import { IFileVersion } from '../src/versions';

installDom();

const PATH = 'work/notes.ipynb';

function turn(run: string): ITurn {
  return {
    run,
    created: '2025-01-01T00:00:01Z',
    model: 'demo:echo',
    mode: 'detached',
    prompt: { content: 'Hi' },
    reply: { content: 'Hello.', status: 'completed' }
  };
}

/** The server writes `run`'s turn into the file: the event it then sends. */
function serverWrites(doc: DocumentContext, run: string, name: string): ITurnWritten {
  const before = doc.file.version;
  const streamchat = mergeTurn(doc.file.streamchat, 'c1', turn(run));
  const after = doc.writeFile(name, { streamchat });
  return { path: PATH, conversation: 'c1', turn: turn(run), before, after };
}

/** Another page saved the notebook with its own change. */
function otherPageSaves(doc: DocumentContext, name: string): IFileVersion {
  return doc.writeFile(name, { cells: [...doc.file.cells, 'from another page'] });
}

function open(): { doc: DocumentContext; handoff: DocumentHandoff; changes: () => number } {
  const doc = new DocumentContext(PATH);
  const handoff = new DocumentHandoff(doc.asContext, SERVER_DRIVE, () => undefined);
  let changes = 0;
  doc.model.contentChanged.connect(() => (changes += 1));
  return { doc, handoff, changes: () => changes };
}

function holds(doc: DocumentContext, run: string): boolean {
  return hasTurn(doc.model.getMetadata(METADATA_KEY), run);
}

describe('DocumentHandoff: a turn the server wrote into the file', () => {
  test('Given a clean notebook whose file the page knows, When a turn is written, Then it holds the turn, knows the new version and stays clean', () => {
    const { doc, handoff } = open();

    handoff.take(serverWrites(doc, 'run-1', 'v1'), PATH);

    assert.ok(holds(doc, 'run-1'));
    assert.equal(doc.contentsModel.hash, 'v1', 'its next save will not ask "File Changed"');
    assert.equal(doc.model.dirty, false);
    assert.equal(doc.reverts.length, 0);
  });

  test('Given a clean notebook whose file another page also changed, When a turn is written, Then it reloads the file', async () => {
    const { doc, handoff } = open();
    otherPageSaves(doc, 'v1');

    handoff.take(serverWrites(doc, 'run-1', 'v2'), PATH);
    assert.equal(doc.reverts.length, 1);
    await doc.reverts[0];

    assert.ok(holds(doc, 'run-1'));
    assert.deepEqual(doc.model.cells, ['from another page']);
    assert.equal(doc.contentsModel.hash, 'v2');
    assert.equal(doc.model.dirty, false);
  });

  test('Given unsaved edits and a file another page changed, When a turn is written, Then the edits stay with the turn and nothing is reloaded', () => {
    const { doc, handoff } = open();
    doc.model.type('my unsaved cell');
    otherPageSaves(doc, 'v1');

    handoff.take(serverWrites(doc, 'run-1', 'v2'), PATH);

    assert.ok(holds(doc, 'run-1'));
    assert.deepEqual(doc.model.cells, ['my unsaved cell']);
    assert.equal(doc.model.dirty, true);
    assert.equal(doc.reverts.length, 0);
    assert.equal(doc.contentsModel.hash, 'v0', "the user's next save is JupyterLab's to reconcile");
  });

  test('Given unsaved edits, When a turn is written over the version the page knows, Then it merges and adopts the version, and the edits stay unsaved', () => {
    const { doc, handoff } = open();
    doc.model.type('my unsaved cell');

    handoff.take(serverWrites(doc, 'run-1', 'v1'), PATH);

    assert.ok(holds(doc, 'run-1'));
    assert.equal(doc.contentsModel.hash, 'v1');
    assert.equal(doc.model.dirty, true);
    assert.deepEqual(doc.model.cells, ['my unsaved cell']);
  });

  test('Given the notebook already holds the run, When the turn is told again, Then nothing is merged again', () => {
    const { doc, handoff, changes } = open();
    const written = serverWrites(doc, 'run-1', 'v1');
    handoff.take(written, PATH);
    const afterFirst = changes();

    handoff.take(written, PATH);

    assert.equal(changes(), afterFirst, 'the document did not change');
    assert.equal(afterFirst, 1);
    assert.equal(doc.reverts.length, 0);
    assert.equal(doc.model.dirty, false);
  });

  test('Given a save in flight, When a turn is written, Then it waits for the save and is taken once the save completed', () => {
    const { doc, handoff } = open();
    doc.model.type('my cell');
    doc.saveState.emit('started');
    // The save writes the file; the server then writes the turn on top of it.
    const saved = doc.writeFile('v1', { cells: ['my cell'] });
    const written = serverWrites(doc, 'run-1', 'v2');

    handoff.take(written, PATH);
    assert.equal(holds(doc, 'run-1'), false, 'not while the save is in flight');
    doc._updateContentsModel({ ...doc.contentsModel, hash: saved.hash ?? undefined });
    doc.model.dirty = false;
    doc.saveState.emit('completed');

    assert.ok(holds(doc, 'run-1'));
    assert.equal(doc.contentsModel.hash, 'v2');
    assert.equal(doc.model.dirty, false);
    assert.equal(doc.reverts.length, 0);
  });

  test('When a turn is for another path (the notebook was renamed), Then the document ignores it', () => {
    const { doc, handoff, changes } = open();
    const written = serverWrites(doc, 'run-1', 'v1');

    handoff.take({ ...written, path: 'other.ipynb' }, 'other.ipynb');

    assert.equal(holds(doc, 'run-1'), false);
    assert.equal(changes(), 0);
    assert.equal(doc.contentsModel.hash, 'v0');
  });

  test('When the hand-off state changes, Then its views show it in data attributes', () => {
    const { handoff } = open();
    const disposed = new Signal<unknown, void>({});
    const view = { node: document.createElement('div'), disposed };

    handoff.addPanel(view);
    assert.equal(view.node.dataset.streamchatHandoff, 'off');
    handoff.setState('ready', PATH);

    assert.equal(view.node.dataset.streamchatHandoff, 'ready');
    assert.equal(view.node.dataset.streamchatHandoffPath, PATH);
    handoff.setState('parked');
    assert.equal(view.node.dataset.streamchatHandoffPath, undefined);
  });
});

describe('parseTurnWritten', () => {
  test('When the event is well formed, Then it gives the turn and the versions', () => {
    const data = JSON.stringify({
      path: PATH,
      conversation: 'c1',
      turn: turn('run-1'),
      before: version('v0'),
      after: null
    });

    const written = parseTurnWritten(data);

    assert.equal(written?.turn.run, 'run-1');
    assert.deepEqual(written?.before, version('v0'));
    assert.equal(written?.after, null);
  });

  test('When the event is malformed, Then it gives null', () => {
    for (const data of [
      'not json',
      '{}',
      JSON.stringify({ path: PATH, conversation: 'c1', turn: {} })
    ]) {
      assert.equal(parseTurnWritten(data), null, data);
    }
  });
});
