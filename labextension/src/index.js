// The page side of ydoc-outputs: a built cell's trust follows the shared document.
//
// JupyterLab 4 reads a cell's `metadata.trusted` once, when it builds the cell's model;
// later changes reach the metadata, not the model. Stock JupyterLab trusts a cell when the
// page runs it (`CodeCell.execute` sets `model.trusted`). With server-side execution the
// server runs it and writes `metadata.trusted = true` in the transaction that clears the
// cell (docs/architecture.md, "Trust"), so a page that was open already, the one that ran
// the cell among them, needs this to render the outputs as trusted: widgets (a
// tqdm.notebook bar), and HTML with styles or scripts. A page opened later builds the
// cell from the same key and needs nothing.
//
// The rule is the one a reloaded page applies: once the key changes, the model is trusted
// exactly when the cell's `metadata.trusted` is true. Setting `model.trusted` re-creates the cell's output
// models with the new trust, and writes nothing to the document when the key is already
// what it says.

//
// A second plugin, `ydoc-outputs:schedule`, marks a code cell running in the shared
// document right before the page posts it for execution, as stock JupyterLab's
// `CodeCell.execute` does when the page runs cells itself. Run All marks and posts its
// cells in one synchronous loop, so the server learns which cells are coming, in
// document order, before their requests arrive (in any order): it runs them in that
// order and makes no request wait for a cell that no page marked (docs/architecture.md,
// "Execution order"). Every page shows the queued cells as `[*]` at once.

import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';

const PLUGIN_ID = 'ydoc-outputs:trust';

/** Keep one code cell's model as trusted as its shared metadata says. */
function followTrust(cell) {
  if (cell.type !== 'code' || cell.isDisposed) {
    return;
  }
  const follow = () => {
    if (cell.isDisposed) {
      return;
    }
    const trusted = cell.sharedModel.getMetadata('trusted') === true;
    if (cell.trusted !== trusted) {
      cell.trusted = trusted;
    }
  };
  cell.sharedModel.metadataChanged.connect((_, change) => {
    if (change.key === 'trusted') {
      follow();
    }
  });
  // Set between the model's build and now. A cell the page built trusted without the
  // key (JupyterLab's new cells) is left as it is until the key changes.
  if (cell.sharedModel.getMetadata('trusted') === true) {
    follow();
  }
}

/** Follow every code cell of a notebook model, the ones added later too. */
function followNotebook(model, seen) {
  if (!model || seen.has(model)) {
    return;
  }
  seen.add(model);
  for (let i = 0; i < model.cells.length; i++) {
    followTrust(model.cells.get(i));
  }
  model.cells.changed.connect((_, change) => {
    if (change.type === 'add' || change.type === 'set') {
      for (const cell of change.newValues) {
        followTrust(cell);
      }
    }
  });
}

const plugin = {
  id: PLUGIN_ID,
  description: 'A cell the server ran is trusted in the pages already open, as in stock.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app, tracker) => {
    const seen = new WeakSet();
    const watch = panel => {
      followNotebook(panel.content.model, seen);
      panel.content.modelChanged.connect(notebook => followNotebook(notebook.model, seen));
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
  }
};

/** Mark a code cell as the stock page marks one it runs, before its request goes out. */
function markScheduled(_, { cell }) {
  const model = cell && !cell.isDisposed ? cell.model : null;
  if (!model || model.type !== 'code' || model.executionState === 'running') {
    return;
  }
  model.executionState = 'running';
}

/** The request did not go through (network error, refused): the server will not run
 * the cell, so its mark goes, as stock leaves a cell whose execution failed to start. */
function unmarkFailed(_, { cell, success }) {
  const model = cell && !cell.isDisposed ? cell.model : null;
  if (success || !model || model.type !== 'code' || model.executionState !== 'running') {
    return;
  }
  model.executionState = 'idle';
}

const schedule = {
  id: 'ydoc-outputs:schedule',
  description: 'Code cells show as queued at once, and the server runs them in order.',
  autoStart: true,
  activate: () => {
    if (PageConfig.getOption('serverSideExecution') !== 'true') {
      return;
    }
    NotebookActions.executionScheduled.connect(markScheduled);
    NotebookActions.executed.connect(unmarkFailed);
  }
};

export default [plugin, schedule];
