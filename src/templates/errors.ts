import { CloudletsError } from '../errors.js';

interface ReportedError {
  name?: unknown;
  message?: unknown;
  chain?: unknown;
}

/**
 * A failure reported by the sandbox, as the user should read it:
 * `/etc/motd: line 3: ReferenceError: foo is not defined`, and through an include
 * `/etc/motd: line 1: /etc/header: line 2: TypeError: ...`.
 */
export function templateError(path: string, reported: unknown): CloudletsError {
  const r = (reported !== null && typeof reported === 'object' ? reported : {}) as ReportedError;
  const name = typeof r.name === 'string' && r.name !== '' ? r.name : 'Error';
  const message = typeof r.message === 'string' ? r.message.trim() : 'unknown error';
  const parts: string[] = [];
  if (Array.isArray(r.chain)) {
    r.chain.forEach((step: { path?: unknown; line?: unknown }, i) => {
      if (typeof step?.line !== 'number') return;
      const file = typeof step.path === 'string' ? step.path : '?';
      parts.push(i === 0 && file === path ? `line ${step.line}` : `${file}: line ${step.line}`);
    });
  }
  if (name === 'thrown value') parts.push(`threw ${message}`);
  else parts.push(message.startsWith(`${name}:`) ? message : `${name}: ${message}`);
  return new CloudletsError('ETEMPLATE', parts.join(': '), { where: path });
}

export function timeoutError(path: string, timeoutMs: number): CloudletsError {
  return new CloudletsError('ETEMPLATE', `did not finish within ${formatSeconds(timeoutMs)}`, {
    where: path,
    hint: 'a template runs with a time limit (--template-timeout)',
  });
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
