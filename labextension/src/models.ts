/** The models the server offers (`GET streamchat/models`). */

import { requestAPI } from './api';

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

export async function loadModels(): Promise<IModelsResponse> {
  const data = await requestAPI<Partial<IModelsResponse> | undefined>('models');
  return {
    models: Array.isArray(data?.models) ? data.models : [],
    default: typeof data?.default === 'string' ? data.default : null
  };
}

/**
 * Fill a `<select>` with the models. The user's current choice stays if still offered, unless
 * `override` (a changed setting); else `preferred` is selected if offered.
 */
export function fillModelSelect(
  select: HTMLSelectElement,
  models: IModelInfo[],
  preferred: string | null,
  override = false
): void {
  const current = override ? '' : select.value;
  select.replaceChildren(
    ...models.map(m => {
      const option = document.createElement('option');
      option.value = m.id;
      option.textContent = `${m.name} (${m.provider})`;
      return option;
    })
  );
  for (const id of [current, preferred]) {
    if (id && models.some(m => m.id === id)) {
      select.value = id;
      break;
    }
  }
}
