import { describe, expect, it } from 'vitest';
import { parseComponentRef } from '../../src/domain/artifact-ref.js';

describe('parseComponentRef', () => {
  it('splits component@version', () => {
    expect(parseComponentRef('node-agent@2.0.0')).toEqual({ component: 'node-agent', version: '2.0.0' });
    expect(parseComponentRef('web@1.2.3-rc.1+build.5')).toEqual({ component: 'web', version: '1.2.3-rc.1+build.5' });
  });
  it('is not a ref: an id, a missing part, a bad component or version', () => {
    for (const text of ['0f3c2a9e-1b7d-4c55-9a0e-3f1d2c4b5a6e', '@1.0.0', 'web@', 'web', 'Web@1.0.0', 'web@latest', 'web@1.0', 'a@b@1.0.0']) {
      expect(parseComponentRef(text), text).toBeUndefined();
    }
  });
});
