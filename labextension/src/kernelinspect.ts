/**
 * Questions to the active notebook's kernel that do not disturb it: kernel/_inspect.py's
 * functions, called through the notebook's own kernel connection as one user expression of a
 * silent `execute_request` with no code (no execution count, no history, no output; the
 * expression binds no name). The answer is the value's `application/json`.
 *
 * A busy kernel would answer only after its cell: the question waits for `idle` instead (and
 * says "kernel busy" meanwhile), so the panel never waits on a queue it cannot see.
 */

import type { ISessionContext } from '@jupyterlab/apputils';
import type { Kernel, KernelMessage } from '@jupyterlab/services';

import { oneLine } from './util';

const MODULE = 'jupyter_streamchat.kernel._inspect';
/** The key of the one user expression. */
const KEY = 'streamchat';
/** Questions the kernel aborted (a cell before them failed) are asked again, this many times. */
const ATTEMPTS = 3;

/** What the panel shows while a question waits for the kernel. */
const WAITING: Partial<Record<Kernel.Status, string>> = {
  busy: 'kernel busy',
  starting: 'kernel starting',
  restarting: 'kernel restarting',
  autorestarting: 'kernel restarting',
  unknown: 'connecting to the kernel'
};

/** A question the kernel cannot answer; the message is one line for the user. */
export class InspectError extends Error {}

/** The expression that calls `call` (`variables()`, `items([...])`) on kernel/_inspect.py. */
export function inspectExpression(call: string): string {
  return `__import__('${MODULE}', fromlist=['_']).${call}`;
}

/** A Python literal for a list of names (JSON strings are Python strings). */
export function pythonList(names: string[]): string {
  return `[${names.map(name => JSON.stringify(name)).join(', ')}]`;
}

/**
 * Ask the notebook's kernel `call` once it is idle; `waiting(why)` is told whenever it is not,
 * and `waiting(null)` when the question goes out.
 * Rejects with an InspectError (no kernel, a dead kernel, no jupyter_streamchat in the kernel's
 * environment, an error in the call).
 */
export async function askKernel(
  session: ISessionContext,
  call: string,
  waiting: (why: string | null) => void
): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    const kernel = await idleKernel(session, waiting);
    waiting(null);
    const answer = await ask(kernel, inspectExpression(call), waiting);
    if (answer !== AGAIN) {
      return answer;
    }
    if (attempt >= ATTEMPTS) {
      throw new InspectError('the kernel did not answer (it dropped the question 3 times)');
    }
  }
}

const AGAIN = Symbol('ask again');

async function idleKernel(
  session: ISessionContext,
  waiting: (why: string) => void
): Promise<Kernel.IKernelConnection> {
  for (;;) {
    const kernel = session.session?.kernel ?? null;
    if (kernel === null) {
      throw new InspectError('no kernel: start the notebook’s kernel');
    }
    const status = kernel.status;
    if (status === 'idle') {
      return kernel;
    }
    if (status === 'dead' || status === 'terminating') {
      throw new InspectError('the kernel is dead: restart it');
    }
    waiting(WAITING[status] ?? 'kernel busy');
    await nextChange(session);
  }
}

/** Resolves at the next kernel status change or kernel change of `session`. */
function nextChange(session: ISessionContext): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      session.statusChanged.disconnect(done);
      session.kernelChanged.disconnect(done);
      session.disposed.disconnect(done);
      resolve();
    };
    session.statusChanged.connect(done);
    session.kernelChanged.connect(done);
    session.disposed.connect(done);
  });
}

async function ask(
  kernel: Kernel.IKernelConnection,
  expression: string,
  waiting: (why: string) => void
): Promise<unknown> {
  const future = kernel.requestExecute(
    {
      code: '',
      silent: true,
      store_history: false,
      allow_stdin: false,
      stop_on_error: false,
      user_expressions: { [KEY]: expression }
    },
    true
  );
  const ours = future.msg.header.msg_id;
  // Another front end's cell may have gone first: our question then waits behind it.
  const onIopub = (_: unknown, msg: KernelMessage.IIOPubMessage): void => {
    const state = (msg.content as { execution_state?: string }).execution_state;
    if (msg.header.msg_type === 'status' && state === 'busy' && msg.parent_header.msg_id !== ours) {
      waiting('kernel busy');
    }
  };
  kernel.iopubMessage.connect(onIopub);
  let reply: KernelMessage.IExecuteReplyMsg;
  try {
    reply = await future.done;
  } catch {
    return AGAIN; // the kernel restarted or the connection was replaced: ask the new one
  } finally {
    kernel.iopubMessage.disconnect(onIopub);
  }
  return answerOf(reply.content);
}

function answerOf(content: KernelMessage.IExecuteReplyMsg['content']): unknown {
  if (content.status === 'aborted') {
    return AGAIN;
  }
  if (content.status !== 'ok') {
    const failed = content as { ename?: string; evalue?: string };
    throw new InspectError(oneLine(`${failed.ename}: ${failed.evalue}`, 200));
  }
  const answer = content.user_expressions[KEY] as {
    status?: string;
    data?: Record<string, unknown>;
    ename?: string;
    evalue?: string;
  };
  if (answer?.status !== 'ok') {
    if (answer?.ename === 'ModuleNotFoundError' || answer?.ename === 'ImportError') {
      throw new InspectError('jupyter_streamchat is not installed where this kernel runs');
    }
    throw new InspectError(oneLine(`${answer?.ename ?? 'Error'}: ${answer?.evalue ?? ''}`, 200));
  }
  const json = answer.data?.['application/json'];
  if (json === undefined) {
    throw new InspectError('the kernel gave no answer it could be read from');
  }
  return json;
}
