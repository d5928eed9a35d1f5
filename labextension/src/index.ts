import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { requestAPI } from './api';
import { handoffPlugin } from './handoff';

/** One entry of `GET {baseUrl}streamchat/models`. */
export interface IModelInfo {
  id: string;
  provider: string;
  name: string;
}

/** Body of `GET {baseUrl}streamchat/models`. */
export interface IModelsResponse {
  models: IModelInfo[];
  default?: string | null;
}

/** Panel state, mirrored in the panel's `data-state` attribute. */
export type PanelState = 'loading' | 'ready' | 'empty' | 'error';

const PLUGIN_ID = 'jupyter-streamchat:plugin';
const PANEL_ID = 'jp-StreamChat-panel';
const OPEN_COMMAND = 'streamchat:open';

export const streamChatIcon = new LabIcon({
  name: 'jupyter-streamchat:chat',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z"/>' +
    '</svg>'
});

/**
 * Side panel: for now only a model picker fed by the server extension.
 */
export class StreamChatPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-StreamChat-panel');
    this.title.label = 'Stream Chat';
    this.title.caption = 'Stream Chat';
    this.title.icon = streamChatIcon;
    this.node.setAttribute('aria-label', 'Stream Chat');

    const header = document.createElement('label');
    header.className = 'jp-StreamChat-modelPicker';
    header.textContent = 'Model';

    this._select = document.createElement('select');
    this._select.className = 'jp-StreamChat-modelSelect';
    this._select.setAttribute('aria-label', 'Model');
    header.appendChild(this._select);

    this._status = document.createElement('div');
    this._status.className = 'jp-StreamChat-status';
    this._status.setAttribute('role', 'status');
    this._status.setAttribute('aria-live', 'polite');

    this.node.append(header, this._status);
    void this.loadModels();
  }

  /** The currently selected model id, or null if none. */
  get selectedModel(): string | null {
    return this._select.value || null;
  }

  /** Current state of the panel. */
  get state(): PanelState {
    return this._state;
  }

  /** (Re)load the model list from the server. */
  async loadModels(): Promise<void> {
    this._setState('loading', 'Loading models…');
    this._select.disabled = true;
    try {
      const data = await requestAPI<Partial<IModelsResponse> | undefined>('models');
      const models = Array.isArray(data?.models) ? data.models : [];
      this._select.replaceChildren(
        ...models.map(m => {
          const option = document.createElement('option');
          option.value = m.id;
          option.textContent = `${m.name} (${m.provider})`;
          return option;
        })
      );
      const defaultId = data?.default;
      if (defaultId && models.some(m => m.id === defaultId)) {
        this._select.value = defaultId;
      }
      if (models.length === 0) {
        this._setState('empty', 'No models configured.');
      } else {
        this._select.disabled = false;
        this._setState('ready', '');
      }
    } catch (error) {
      this._select.replaceChildren();
      const message = error instanceof Error ? error.message : String(error);
      this._setState('error', `Could not load models: ${message}`);
    }
  }

  private _setState(state: PanelState, text: string): void {
    this._state = state;
    this.node.dataset.state = state;
    this._status.textContent = text;
    this._status.classList.toggle('jp-StreamChat-error', state === 'error');
    if (state === 'error') {
      this._status.setAttribute('role', 'alert');
    } else {
      this._status.setAttribute('role', 'status');
    }
  }

  private _select: HTMLSelectElement;
  private _status: HTMLDivElement;
  private _state: PanelState = 'loading';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'StreamChat side panel for jupyter_streamchat.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const panel = new StreamChatPanel();
    app.shell.add(panel, 'right', { rank: 1000 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Open Stream Chat',
      caption: 'Show the Stream Chat side panel',
      execute: () => app.shell.activateById(PANEL_ID)
    });
  }
};

export default [plugin, handoffPlugin];
