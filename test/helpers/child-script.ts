// Scripts run in a child Node: what would hang, crash or change process-wide limits stays out of
// the test runner's process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

/**
 * Runs an ES module script (TypeScript imports allowed, through tsx) in a child Node and returns
 * the JSON it printed on its last line. The child must end by itself with status 0: a signal
 * means it hung (killed at `timeout` ms) or crashed.
 */
export function runChildScript<T>(script: string, timeout: number): T {
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout });
  assert.equal(child.signal, null, `the child hung or crashed (ended by ${child.signal}): ${child.stderr}`);
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout.trim().split('\n').pop()!) as T;
}
