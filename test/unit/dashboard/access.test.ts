import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DashboardAccess, rotateToken } from '../../../src/dashboard/access.js';

const dir = () => mkdtempSync(path.join(os.tmpdir(), 't2-dash-'));

describe('DashboardAccess', () => {
  it('creates its token and report key once, mode 0600, and keeps them across restarts', () => {
    const d = dir();
    const a = new DashboardAccess(d);
    for (const f of ['token', 'report-key']) expect(statSync(path.join(d, f)).mode & 0o777).toBe(0o600);
    const b = new DashboardAccess(d);
    expect(b.accessToken()).toBe(a.accessToken());
    expect(b.reportToken('job-1')).toBe(a.reportToken('job-1'));
  });

  it('a report token reports for its own job only', () => {
    const a = new DashboardAccess(dir());
    expect(a.checkReportToken('job-1', a.reportToken('job-1'))).toBe(true);
    expect(a.checkReportToken('job-2', a.reportToken('job-1'))).toBe(false);
    expect(a.checkReportToken('job-1', undefined)).toBe(false);
    expect(a.checkReportToken('job-1', a.accessToken())).toBe(false);
    // Another dashboard's key issues other tokens.
    expect(new DashboardAccess(dir()).checkReportToken('job-1', a.reportToken('job-1'))).toBe(false);
  });

  it('rotating the token ends sessions made with the old one, and keeps report tokens valid', () => {
    const d = dir();
    const a = new DashboardAccess(d);
    const old = a.accessToken();
    const session = a.sessionValue();
    const report = a.reportToken('job-1');
    const fresh = rotateToken(d);
    expect(readFileSync(path.join(d, 'token'), 'utf8').trim()).toBe(fresh);
    expect(a.checkAccessToken(old)).toBe(false);
    expect(a.checkAccessToken(fresh)).toBe(true);
    expect(a.checkSession(session)).toBe(false);
    expect(a.checkSession(a.sessionValue())).toBe(true);
    expect(a.checkReportToken('job-1', report)).toBe(true);
  });
});
