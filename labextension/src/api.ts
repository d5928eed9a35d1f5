import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { own } from './metadata';

/**
 * The one way this extension talks to the server: `{baseUrl}streamchat/<endPoint>` through
 * `ServerConnection.makeRequest`, which adds the token, the XSRF header and the base URL a
 * JupyterHub (or any) prefix needs. Streams (SSE) use the raw response; everything else
 * `requestAPI`.
 *
 * @param endPoint - API path relative to `{baseUrl}streamchat/`, e.g. `runs/abc/events?after=3`
 * @throws ServerConnection.NetworkError if the server cannot be reached
 */
export async function fetchAPI(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<Response> {
  const requestUrl = URLExt.join(settings.baseUrl, 'streamchat', endPoint);
  try {
    return await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }
}

/**
 * Call the jupyter_streamchat server extension and decode its JSON answer.
 *
 * @param endPoint - API path relative to `{baseUrl}streamchat/`, e.g. `models`
 * @param init - Initial values for the request
 * @param settings - Server connection settings (defaults to the page settings)
 * @returns The parsed JSON body of the response
 * @throws ServerConnection.NetworkError if the server cannot be reached
 * @throws ServerConnection.ResponseError if the response status is not ok
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const response = await fetchAPI(endPoint, init, settings);
  const text = await response.text();
  let data: unknown = undefined;
  try {
    data = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON (e.g. an HTML error page): reported by status below.
  }

  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, errorMessage(response, data));
  }
  if (data === undefined && text.length > 0) {
    throw new ServerConnection.ResponseError(response, 'Invalid JSON in response');
  }

  return data as T;
}

/** The server's message for a failed response (JSON `message`), else its status. */
export async function responseError(response: Response): Promise<string> {
  let data: unknown = undefined;
  try {
    data = JSON.parse(await response.text());
  } catch {
    // not JSON
  }
  return errorMessage(response, data);
}

/**
 * A short, human readable message for a failed response: the server's JSON
 * `message` or `reason` if there is one, else the HTTP status.
 */
function errorMessage(response: Response, data: unknown): string {
  for (const value of [own(data, 'message'), own(data, 'reason')]) {
    if (typeof value === 'string' && value.length > 0) {
      return value;
    }
  }
  return `${response.status} ${response.statusText}`.trim();
}
