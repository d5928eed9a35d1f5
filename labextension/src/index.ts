/**
 * jupyter_streamchat's JupyterLab extension: the "Stream Chat" side panel (panel.ts) and the
 * open-document hand-off (handoff.ts), which works for every open notebook, panel shown or not.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { handoffPlugin } from './handoff';
import { IPanelSettings, PANEL_ID, StreamChatPanel } from './panel';

const PLUGIN_ID = 'jupyter-streamchat:plugin';
const OPEN_COMMAND = 'streamchat:open';

const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'The Stream Chat side panel: chat about the active notebook, Stop, re-attach, compare.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry, IEditorLanguageRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    languages: IEditorLanguageRegistry | null
  ) => {
    const panel = new StreamChatPanel(tracker, rendermime, languages);
    app.shell.add(panel, 'right', { rank: 1000 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Open Stream Chat',
      caption: 'Show the Stream Chat side panel',
      execute: () => app.shell.activateById(PANEL_ID)
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'Stream Chat' });

    if (settingRegistry !== null) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = (): void =>
            panel.configure(settings.composite as unknown as IPanelSettings);
          settings.changed.connect(apply);
          apply();
        })
        .catch(error => console.warn('StreamChat: could not load settings', error));
    }
  }
};

export default [panelPlugin, handoffPlugin];
