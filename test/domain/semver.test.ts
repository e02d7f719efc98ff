import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareVersions, isSemver, parseSemver } from '../../src/domain/semver.js';

describe('semver', () => {
  it('parses versions with pre-release and build metadata', () => {
    expect(parseSemver('1.2.3')).toEqual({ major: 1, minor: 2, patch: 3, prerelease: [], build: [] });
    expect(parseSemver('2.0.0-rc.1+build.7')).toEqual({ major: 2, minor: 0, patch: 0, prerelease: ['rc', 1], build: ['build', '7'] });
  });

  it('refuses what is not a semantic version', () => {
    for (const bad of ['', '1', '1.2', 'v1.2.3', '01.2.3', '1.2.3-', '1.2.3-01', '1.2.3+', '1.2.3.4', ' 1.2.3', 'latest']) {
      expect(isSemver(bad), bad).toBe(false);
    }
  });

  it('orders versions as semver.org §11 lists them', () => {
    const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.2.0', '1.10.0', '2.0.0'];
    for (let i = 0; i < ordered.length - 1; i++) {
      expect(compareVersions(ordered[i] as string, ordered[i + 1] as string), `${ordered[i]} < ${ordered[i + 1]}`).toBe(-1);
      expect(compareVersions(ordered[i + 1] as string, ordered[i] as string)).toBe(1);
    }
    expect(compareVersions('1.0.0+a', '1.0.0+b')).toBe(0);
    expect(() => compareVersions('1.0', '1.0.0')).toThrow(/not a semantic version: 1.0/);
  });

  it('is a total order: antisymmetric and transitive on generated versions', () => {
    const part = fc.integer({ min: 0, max: 3 });
    const pre = fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }).map(String), fc.constantFrom('alpha', 'beta', 'rc')), { maxLength: 2 });
    const version = fc.tuple(part, part, part, pre).map(([a, b, c, p]) => `${a}.${b}.${c}${p.length ? `-${p.join('.')}` : ''}`);
    fc.assert(
      fc.property(version, version, version, (a, b, c) => {
        expect(compareVersions(a, b)).toBe(-compareVersions(b, a) || 0);
        if (compareVersions(a, b) <= 0 && compareVersions(b, c) <= 0) expect(compareVersions(a, c)).toBeLessThanOrEqual(0);
      }),
    );
  });
});
