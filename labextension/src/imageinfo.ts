/**
 * Mime type and pixel size of an image from its first bytes (PNG, JPEG, GIF, WebP): what the
 * Context view shows and what the token estimate needs, read as the server reads it
 * (providers/_parts.py `sniff`), without decoding the image.
 */

export interface IImageInfo {
  mime: 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp';
  width: number;
  height: number;
  /** Size of the decoded bytes. */
  bytes: number;
}

const JPEG_SIZE_MARKERS = new Set([
  0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf
]);

/** The image's facts from base64 `data`, or null for anything that is not one of the four. */
export function sniffImage(data: string): IImageInfo | null {
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(data);
  } catch {
    return null;
  }
  const found = sniff(bytes);
  return found === null ? null : { ...found, bytes: bytes.length };
}

/** Base64 (with or without line breaks, as notebooks store outputs) to bytes. */
export function decodeBase64(data: string): Uint8Array {
  const binary = atob(data.replace(/\s+/g, ''));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

type Found = Omit<IImageInfo, 'bytes'>;

function sniff(b: Uint8Array): Found | null {
  const ascii = (from: number, to: number): string => String.fromCharCode(...b.subarray(from, to));
  if (b.length >= 24 && ascii(0, 8) === '\x89PNG\r\n\x1a\n' && ascii(12, 16) === 'IHDR') {
    return { mime: 'image/png', width: be32(b, 16), height: be32(b, 20) };
  }
  if (b.length >= 10 && (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a')) {
    return { mime: 'image/gif', width: le16(b, 6), height: le16(b, 8) };
  }
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0xd8) {
    return jpeg(b);
  }
  if (b.length >= 16 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') {
    return webp(b, ascii(12, 16));
  }
  return null;
}

function jpeg(b: Uint8Array): Found | null {
  let at = 2;
  while (at + 9 < b.length) {
    if (b[at] !== 0xff) {
      return null;
    }
    const marker = b[at + 1];
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (JPEG_SIZE_MARKERS.has(marker)) {
      return { mime: 'image/jpeg', width: be16(b, at + 7), height: be16(b, at + 5) };
    }
    at += 2 + be16(b, at + 2);
  }
  return null;
}

function webp(b: Uint8Array, chunk: string): Found | null {
  if (chunk === 'VP8 ' && b.length >= 30) {
    return { mime: 'image/webp', width: le16(b, 26) & 0x3fff, height: le16(b, 28) & 0x3fff };
  }
  if (chunk === 'VP8L' && b.length >= 25) {
    const bits = (b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24)) >>> 0;
    return { mime: 'image/webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X' && b.length >= 30) {
    return { mime: 'image/webp', width: le24(b, 24) + 1, height: le24(b, 27) + 1 };
  }
  return null;
}

function be32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function be16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

function le16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

function le24(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
}
