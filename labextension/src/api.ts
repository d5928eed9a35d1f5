import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * Call the jupyter_streamchat server extension.
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
  const requestUrl = URLExt.join(settings.baseUrl, 'streamchat', endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

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

/**
 * A short, human readable message for a failed response: the server's JSON
 * `message` or `reason` if there is one, else the HTTP status.
 */
function errorMessage(response: Response, data: unknown): string {
  if (data !== null && typeof data === 'object') {
    const body = data as { message?: unknown; reason?: unknown };
    for (const value of [body.message, body.reason]) {
      if (typeof value === 'string' && value.length > 0) {
        return value;
      }
    }
  }
  return `${response.status} ${response.statusText}`.trim();
}
