// The JS side of SDNODE_LOG: lines the native side would print at debug level, from lib/.

/** True when SDNODE_LOG=debug asks for debug lines. */
export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.SDNODE_LOG === 'debug';
}

/** Writes `[sdnode] message` to stderr when SDNODE_LOG=debug, as the native log does. */
export function debugLog(message: string): void {
  if (debugEnabled()) process.stderr.write(`[sdnode] ${message}\n`);
}
