/**
 * The conversation's settings as the panel asks for them (SPEC 11): system prompt, temperature and
 * max tokens, read from the form into the request's `system` and `options`, or refused in one line
 * before anything is sent (the server refuses the same with a 400: engine/_validation.py); and what
 * a reply cost, shown in words. Pure: unit tested in node.
 */

/** The bounds the server takes (docs/api.md, `options`). */
export const TEMPERATURE_MAX = 2;

/** What a request carries of the conversation's settings. */
export interface ISteering {
  system?: string;
  options?: { temperature?: number; max_tokens?: number };
}

/**
 * The request's `system` and `options` from the form's text (empty: not set), or a one-line error
 * naming the field and what it takes.
 */
export function readSteering(form: {
  system: string;
  temperature: string;
  maxTokens: string;
}): { steering: ISteering } | { error: string } {
  const steering: ISteering = {};
  if (form.system.trim() !== '') {
    steering.system = form.system;
  }
  const options: { temperature?: number; max_tokens?: number } = {};
  const temperature = form.temperature.trim();
  if (temperature !== '') {
    const value = Number(temperature);
    if (!Number.isFinite(value) || value < 0 || value > TEMPERATURE_MAX) {
      return {
        error: `Temperature must be a number from 0 to ${TEMPERATURE_MAX} (not ${JSON.stringify(temperature)}); nothing was sent.`
      };
    }
    options.temperature = value;
  }
  const maxTokens = form.maxTokens.trim();
  if (maxTokens !== '') {
    const value = Number(maxTokens);
    if (!/^\d+$/.test(maxTokens) || !Number.isSafeInteger(value) || value < 1) {
      return {
        error: `Max tokens must be a whole number of at least 1 (not ${JSON.stringify(maxTokens)}); nothing was sent.`
      };
    }
    options.max_tokens = value;
  }
  if (Object.keys(options).length > 0) {
    steering.options = options;
  }
  return { steering };
}

/** The form's text for a turn's recorded `params` (what a conversation continues with after a reload). */
export function formOf(params: { [key: string]: unknown } | null | undefined): {
  system: string;
  temperature: string;
  maxTokens: string;
} {
  const text = (value: unknown): string =>
    typeof value === 'number' && Number.isFinite(value) ? String(value) : '';
  return {
    system: typeof params?.system === 'string' ? params.system : '',
    temperature: text(params?.temperature),
    maxTokens: text(params?.max_tokens)
  };
}

/** A cost shows three significant digits and at least cents (as the widgets: kernel/_stats.py `cost_text`). */
const COST_SIGNIFICANT = 3;

/**
 * A cost in USD as a reply shows it: `$0.0400`, `$0.000123`, `$1.50`, `$12.35`; '' when unknown.
 * `toFixed` rounds the float's exact value half up, as the widgets' `Decimal.quantize(ROUND_HALF_UP)`;
 * tests/parity/cost holds both to the same texts.
 */
export function costText(usd: number | null): string {
  if (usd === null || !Number.isFinite(usd)) {
    return '';
  }
  if (usd <= 0) {
    return '$0';
  }
  const decimals = Math.max(2, COST_SIGNIFICANT - 1 - Math.floor(Math.log10(usd)));
  return `$${usd.toFixed(decimals)}`;
}

/**
 * A conversation's total: `3 replies · 120 tokens in, 45 out · $0.0012` (the cost only when a price
 * is known, and how many replies it covers when not all have one).
 */
export function totalText(
  replies: number,
  tokensIn: number,
  tokensOut: number,
  cost: number | null,
  priced: number
): string {
  const parts = [replies === 1 ? '1 reply' : `${replies} replies`];
  parts.push(
    `${tokensIn.toLocaleString('en-US')} tokens in, ${tokensOut.toLocaleString('en-US')} out`
  );
  if (cost !== null && priced > 0) {
    parts.push(costText(cost) + (priced < replies ? ` (${priced} of ${replies} priced)` : ''));
  }
  return parts.join(' · ');
}

/**
 * How a reply was asked and who answered, in one short line: `temperature 0.3 · max tokens 64 ·
 * seed 7 · top_p 0.9 · system prompt · answered by gpt-4o-2024-08-06`; '' when nothing is known.
 */
export function paramsText(
  params: { [key: string]: unknown },
  responseModel: string | null,
  model: string
): string {
  const parts: string[] = [];
  const shown: [string, string][] = [
    ['temperature', 'temperature'],
    ['max_tokens', 'max tokens'],
    ['seed', 'seed'],
    ['top_p', 'top_p']
  ];
  for (const [key, label] of shown) {
    if (typeof params[key] === 'number') {
      parts.push(`${label} ${params[key]}`);
    }
  }
  if (typeof params.system === 'string' && params.system !== '') {
    parts.push('system prompt');
  }
  // The provider's own name for the model, when it is not just the one asked for.
  if (responseModel !== null && responseModel !== '' && !model.endsWith(`:${responseModel}`)) {
    parts.push(`answered by ${responseModel}`);
  }
  return parts.join(' · ');
}
