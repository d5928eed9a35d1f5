/**
 * An open notebook for the hand-off tests (src/opendocument.ts): a document context and model with
 * the parts of JupyterLab's that the hand-off uses (signals, metadata, dirty flag, the version it
 * knows, revert, save state), and the file on disk beside it. JupyterLab's own context needs a
 * browser and a server; this keeps their behaviour where the hand-off depends on it: setting
 * metadata makes the model dirty and tells `contentChanged`, revert loads the file.
 */

import { Signal } from '@lumino/signaling';

import type { DocumentRegistry } from '@jupyterlab/docregistry';
import type { Contents } from '@jupyterlab/services';

import { METADATA_KEY } from '../src/metadata';
import type { NotebookContext } from '../src/opendocument';
import type { IFileVersion } from '../src/versions';

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

export class NotebookModel {
  readonly contentChanged = new Signal<this, void>(this);
  dirty = false;
  metadata: { [key: string]: unknown } = {};
  /** What the user typed into the notebook (cells, as far as these tests care). */
  cells: string[] = [];

  getMetadata(key: string): unknown {
    return clone(this.metadata[key]);
  }

  setMetadata(key: string, value: unknown): void {
    this.metadata[key] = clone(value);
    this.dirty = true;
    this.contentChanged.emit();
  }

  /** The user edits the notebook. */
  type(source: string): void {
    this.cells.push(source);
    this.dirty = true;
    this.contentChanged.emit();
  }
}

/** The notebook file as the server has it. */
export interface IFile {
  version: IFileVersion;
  streamchat: unknown;
  cells: string[];
}

export class DocumentContext {
  constructor(readonly path: string) {
    this.localPath = path;
    this.file = { version: version('v0'), streamchat: undefined, cells: [] };
    this.contentsModel = this._modelOf(this.file.version);
  }

  readonly pathChanged = new Signal<this, string>(this);
  readonly saveState = new Signal<this, DocumentRegistry.SaveState>(this);
  readonly disposed = new Signal<this, void>(this);
  readonly model = new NotebookModel();
  readonly ready = Promise.resolve();
  readonly isReady = true;
  localPath: string;
  contentsModel: Contents.IModel;
  file: IFile;
  /** Resolves each time the document was reloaded from the file. */
  reverts: Promise<void>[] = [];

  /** As JupyterLab's context: what the hand-off sees. */
  get asContext(): NotebookContext {
    return this as unknown as NotebookContext;
  }

  /** The server wrote to the file (a turn, or another page's save): its new version. */
  writeFile(name: string, change: Partial<Omit<IFile, 'version'>>): IFileVersion {
    this.file = { ...this.file, ...clone(change), version: version(name) };
    return this.file.version;
  }

  revert(): Promise<void> {
    this.model.metadata = { [METADATA_KEY]: clone(this.file.streamchat) };
    this.model.cells = clone(this.file.cells);
    this.model.dirty = false;
    this.contentsModel = this._modelOf(this.file.version);
    const done = Promise.resolve();
    this.reverts.push(done);
    return done;
  }

  /** JupyterLab's own update of the version the context knows (after a save). */
  _updateContentsModel(model: Contents.IModel): void {
    this.contentsModel = model;
  }

  private _modelOf(known: IFileVersion): Contents.IModel {
    return {
      name: this.path,
      path: this.path,
      type: 'notebook',
      writable: true,
      created: '2025-01-01T00:00:00Z',
      last_modified: known.last_modified ?? '',
      mimetype: 'application/x-ipynb+json',
      content: null,
      format: null,
      hash: known.hash ?? undefined,
      hash_algorithm: known.hash_algorithm ?? undefined
    };
  }
}

/** A file version named `name` (its hash). */
export function version(name: string): IFileVersion {
  return { hash: name, hash_algorithm: 'sha256', last_modified: '2025-01-01T00:00:00Z' };
}

/** All documents are on the server's own drive. */
export const SERVER_DRIVE = { driveName: (): string => '' };
