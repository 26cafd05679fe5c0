// Ctrl-C for the CLI's long commands (generate, upscale): the first one cancels the work in
// progress through an AbortController, the second exits at once.
import { AbortError } from '../errors.js';

/** Ctrl-C: the command stopped and nothing was written. Exit status 130, as shells expect. */
export class CancelledError extends Error {
  readonly exitCode = 130;
}

/**
 * Aborts `controller` with a CancelledError on the first SIGINT (the current step or tile
 * finishes first) and exits with 130 on a second one, which does not wait for it. Returns the
 * function that removes the handler.
 */
export function abortOnInterrupt(controller: AbortController): () => void {
  let interrupts = 0;
  const onInterrupt = (): void => {
    if (++interrupts > 1) process.exit(130);
    controller.abort(new CancelledError('cancelled'));
  };
  process.on('SIGINT', onInterrupt);
  return () => process.off('SIGINT', onInterrupt);
}

/**
 * What a long command throws when its work failed: a CancelledError saying that nothing was
 * written when the failure is the Ctrl-C cancel (ours, or the AbortError the API gave for it),
 * else the error itself.
 */
export function cancelledOr(error: unknown, signal: AbortSignal): unknown {
  if (error instanceof CancelledError || (error instanceof AbortError && signal.aborted)) {
    return new CancelledError('cancelled; nothing was written');
  }
  return error;
}
