/** `sameVersion` (src/versions.ts): when a page may take the file version the server wrote. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { sameVersion } from '../src/versions';

const V1 = {
  hash: 'aa',
  hash_algorithm: 'sha256',
  last_modified: '2026-12-05T10:00:00.123456+00:00'
};

describe('sameVersion', () => {
  test('equal hashes are the same version, whatever the times say', () => {
    assert.equal(sameVersion(V1, { ...V1, last_modified: '2020-01-01T00:00:00Z' }), true);
  });

  test('different hashes or algorithms are different versions', () => {
    assert.equal(sameVersion(V1, { ...V1, hash: 'bb' }), false);
    assert.equal(sameVersion(V1, { ...V1, hash_algorithm: 'md5' }), false);
  });

  test('without a hash on one side, times equal to the millisecond are the same version', () => {
    // Jupyter writes "Z", Python's isoformat "+00:00"; microseconds beyond the millisecond are lost
    assert.equal(sameVersion({ last_modified: '2026-12-05T10:00:00.123Z' }, V1), true);
    assert.equal(
      sameVersion({ ...V1, hash: null }, { last_modified: '2026-12-05T10:00:00.124Z' }),
      false
    );
  });

  test('nothing known, or nothing to compare, is never the same version', () => {
    assert.equal(sameVersion(null, V1), false);
    assert.equal(sameVersion(V1, null), false);
    assert.equal(sameVersion({}, {}), false);
    assert.equal(
      sameVersion({ last_modified: 'not a date' }, { last_modified: 'not a date' }),
      false
    );
  });
});
