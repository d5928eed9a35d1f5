/**
 * Parity: the token estimates the Context view shows (src/tokens.ts, src/imageinfo.ts) are the
 * ones Python makes and the server records (tests/test_parity_tokens.py reads the same fixtures,
 * tests/parity/tokens/*.json).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { sniffImage } from '../src/imageinfo';
import { estimateImageTokens, estimateTokens, itemTokens, IWireItem } from '../src/tokens';

/** The repository's tests/parity/tokens folder, from test-build/test/. */
const FOLDER = path.resolve(__dirname, '../../../tests/parity/tokens');

function fixture<T>(name: string): T {
  return JSON.parse(fs.readFileSync(path.join(FOLDER, `${name}.json`), 'utf8')) as T;
}

interface IItemCase extends IWireItem {
  tokens_estimate: number;
  size?: { width: number; height: number; bytes: number };
}

describe('parity: token estimates (tests/parity/tokens)', () => {
  test('text: the estimate of each text is the fixture', () => {
    const { cases } = fixture<{ cases: { text: string; tokens: number }[] }>('texts');
    assert.ok(cases.length >= 10);
    for (const { text, tokens } of cases) {
      assert.equal(estimateTokens(text), tokens, JSON.stringify(text.slice(0, 40)));
    }
  });

  test('images: the estimate of each size is the fixture', () => {
    const { cases } = fixture<{ cases: { width: number; height: number; tokens: number }[] }>(
      'images'
    );
    assert.ok(cases.length >= 10);
    for (const { width, height, tokens } of cases) {
      assert.equal(estimateImageTokens(width, height), tokens, `${width}x${height}`);
    }
  });

  test('items: each estimate, each image size read from its bytes, and the total are the fixture', () => {
    const { items, total } = fixture<{ items: IItemCase[]; total: number }>('items');
    let sum = 0;
    for (const item of items) {
      const tokens = itemTokens(item);
      assert.equal(tokens, item.tokens_estimate, item.name);
      sum += tokens ?? 0;
      if (item.size !== undefined) {
        const info = sniffImage(item.data ?? '');
        assert.ok(info !== null, item.name);
        assert.deepEqual(
          { width: info.width, height: info.height, bytes: info.bytes },
          item.size,
          item.name
        );
        assert.equal(info.mime, item.image?.mime, item.name);
      }
    }
    assert.equal(sum, total);
  });
});
