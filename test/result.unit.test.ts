// One status from what happened to a run, and which explanation wins when several apply.
import { constants } from 'node:os';

import { describe, expect, it } from 'vitest';

import { deriveStatus, signalName, type Outcome } from '../src/result.js';

const { SIGKILL, SIGSEGV, SIGXCPU, SIGSYS, SIGABRT } = constants.signals;

const exited = (code: number): Outcome => ({
  exitCode: code,
  signal: null,
  killReason: null,
  violation: null,
  oomKilled: false,
  cpuTimeMs: 10,
  cpuLimitMs: null,
});
const killed = (signal: number, more: Partial<Outcome> = {}): Outcome => ({ ...exited(0), exitCode: null, signal, ...more });

describe('deriveStatus', () => {
  it('ok and nonzero-exit from the exit code', () => {
    expect(deriveStatus(exited(0))).toBe('ok');
    expect(deriveStatus(exited(1))).toBe('nonzero-exit');
    expect(deriveStatus(exited(255))).toBe('nonzero-exit');
  });

  it('signaled when a signal ended the program and nothing explains it better', () => {
    expect(deriveStatus(killed(SIGSEGV))).toBe('signaled');
    expect(deriveStatus(killed(SIGKILL))).toBe('signaled');
  });

  it('each reason the supervisor ended the run is its status', () => {
    expect(deriveStatus(killed(SIGKILL, { killReason: 'wall-time-limit' }))).toBe('wall-time-limit');
    expect(deriveStatus(killed(SIGKILL, { killReason: 'time-limit' }))).toBe('time-limit');
    expect(deriveStatus(killed(SIGKILL, { killReason: 'output-limit' }))).toBe('output-limit');
  });

  it('a kill reason wins over how the program ended, even a clean exit racing the kill', () => {
    expect(deriveStatus({ ...exited(0), killReason: 'wall-time-limit' })).toBe('wall-time-limit');
    expect(deriveStatus({ ...exited(3), killReason: 'output-limit' })).toBe('output-limit');
  });

  it('a denied system call wins over everything else', () => {
    const violation = { syscall: 'socket', nr: 41, arch: 'x86_64' };
    expect(deriveStatus(killed(SIGSYS, { violation }))).toBe('syscall-denied');
    expect(deriveStatus(killed(SIGKILL, { violation, oomKilled: true, killReason: 'wall-time-limit' }))).toBe('syscall-denied');
  });

  it("the kernel's OOM kill wins over the signal it sent and over a supervisor's reason", () => {
    expect(deriveStatus(killed(SIGKILL, { oomKilled: true }))).toBe('memory-limit');
    expect(deriveStatus(killed(SIGKILL, { oomKilled: true, killReason: 'wall-time-limit' }))).toBe('memory-limit');
  });

  it("an OOM kill in the box (of a child, say) makes any exit memory-limit, unless the supervisor ended a program the kernel did not kill", () => {
    expect(deriveStatus({ ...exited(0), oomKilled: true })).toBe('memory-limit');
    expect(deriveStatus({ ...exited(0), oomKilled: true, killReason: 'output-limit' })).toBe('output-limit');
  });

  it("SIGXCPU (RLIMIT_CPU's soft limit) is time-limit", () => {
    expect(deriveStatus(killed(SIGXCPU))).toBe('time-limit');
  });

  it("CPU time at the limit explains a signal or a kill (the backstop's SIGKILL), not a clean exit", () => {
    const atLimit = { cpuTimeMs: 1000, cpuLimitMs: 1000 };
    expect(deriveStatus(killed(SIGKILL, atLimit))).toBe('time-limit');
    expect(deriveStatus(killed(SIGKILL, { ...atLimit, killReason: 'wall-time-limit' }))).toBe('time-limit');
    expect(deriveStatus({ ...exited(0), ...atLimit })).toBe('ok');
    expect(deriveStatus(killed(SIGKILL, { cpuTimeMs: 999, cpuLimitMs: 1000 }))).toBe('signaled');
  });

  it('CPU time past the limit yields to an OOM kill', () => {
    expect(deriveStatus(killed(SIGKILL, { oomKilled: true, cpuTimeMs: 2000, cpuLimitMs: 1000 }))).toBe('memory-limit');
  });
});

describe('signalName', () => {
  it('names a signal by its usual name, and an unknown number by its number', () => {
    expect(signalName(SIGABRT)).toBe('SIGABRT');
    expect(signalName(SIGSYS)).toBe('SIGSYS');
    expect(signalName(99)).toBe('SIG99');
  });
});
