/**
 * A reply's numbers and its stats line, defined once for the panel (reply header, compare panes).
 *
 * The kernel widgets compute the same numbers with the same rule and wording
 * (`jupyter_streamchat/kernel/_stats.py`); the fixtures in `tests/parity/stats` hold both to it.
 *
 * - time to first token: from the request to the first `delta` or `reasoning` event;
 * - tokens/s: output tokens divided by the time from the first token to the end of the run (or to
 *   now while it runs), shown only once there are at least `MIN_RATE_TOKENS` tokens over at least
 *   `MIN_RATE_SECONDS`: before that, one early token would show an absurd rate;
 * - output tokens: the provider's `usage.output_tokens` once reported, else the text deltas seen.
 *
 * Pure: unit tested in node.
 */

export const MIN_RATE_TOKENS = 2;
export const MIN_RATE_SECONDS = 0.1;

/** `tokens` per second from `firstAt` to `endAt` (ms), or null while it cannot be told. */
export function tokensPerSecond(
  firstAt: number | null,
  endAt: number,
  tokens: number
): number | null {
  if (firstAt === null || tokens < MIN_RATE_TOKENS) {
    return null;
  }
  const seconds = (endAt - firstAt) / 1000;
  return seconds >= MIN_RATE_SECONDS ? tokens / seconds : null;
}

/** `first token 0.42 s · 12.5 tok/s · 40 tokens` (`1 token`), each part only once it is known. */
export function statsText(ttft: number | null, rate: number | null, tokens: number): string {
  const parts: string[] = [];
  if (ttft !== null) {
    parts.push(`first token ${ttft.toFixed(2)} s`);
  }
  if (rate !== null) {
    parts.push(`${rate.toFixed(1)} tok/s`);
  }
  if (tokens > 0) {
    parts.push(tokens === 1 ? '1 token' : `${tokens} tokens`);
  }
  return parts.join(' · ');
}
