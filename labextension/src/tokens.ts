/**
 * Token estimates shown before Send: the rule of jupyter_streamchat/context/_tokens.py, which
 * says why (an estimate, not a tokenizer's count). tests/parity/tokens holds both sides to the
 * same numbers (pytest and node read the same fixtures).
 */

import { sniffImage } from './imageinfo';

const CHARS_PER_TOKEN = 4;
const IMAGE_PIXELS_PER_TOKEN = 750;
const IMAGE_LONG_SIDE = 1568;
const IMAGE_MAX_PIXELS = 1_150_000;

/** About how many tokens `text` costs: ceil(characters / 4), characters as Python counts them. */
export function estimateTokens(text: string): number {
  return Math.ceil(codePoints(text) / CHARS_PER_TOKEN);
}

/** About how many tokens an image of `width` x `height` pixels costs (Anthropic's formula). */
export function estimateImageTokens(width: number, height: number): number {
  if (width <= 0 || height <= 0) {
    return 0;
  }
  const scale = Math.min(
    1,
    IMAGE_LONG_SIDE / Math.max(width, height),
    Math.sqrt(IMAGE_MAX_PIXELS / (width * height))
  );
  // Same order of operations as Python, so the float rounding is the same.
  return Math.max(1, Math.ceil((width * scale * height * scale) / IMAGE_PIXELS_PER_TOKEN));
}

/** A context item as the request's `context` carries it (SPEC 10). */
export interface IWireItem {
  kind: 'dataframe' | 'series' | 'array' | 'object' | 'text' | 'cell' | 'image';
  name?: string;
  text?: string;
  image?: { mime: string; [key: string]: unknown };
  /** An image's bytes, base64. */
  data?: string;
}

/**
 * The estimate the server records for an item: its text, plus the image's tokens for an image
 * (its size read from its bytes); null for an image whose bytes are not an image.
 */
export function itemTokens(item: IWireItem): number | null {
  const text = item.text ? estimateTokens(item.text) : 0;
  if (item.kind !== 'image') {
    return text;
  }
  const info = item.data === undefined ? null : sniffImage(item.data);
  return info === null ? null : text + estimateImageTokens(info.width, info.height);
}

/** Characters as Python's `len` counts them (code points: an emoji is one, not two). */
export function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        i++;
      }
    }
    count++;
  }
  return count;
}
