// POST /sdapi/v1/txt2img and /img2img: checked and planned at once (422 before any waiting),
// then queued. A client that goes away cancels its job, waiting or running.
import type { FastifyInstance as App, FastifyReply, FastifyRequest } from 'fastify';

import { AbortError } from '../../errors.js';
import { planImg2Img, planTxt2Img, type GenerationPlan } from '../generation/plan.js';
import { img2imgResponse, txt2imgResponse } from '../generation/response.js';
import type { GenerationOutput } from '../generation/run.js';
import { HttpError } from '../http/errors.js';
import { QueueFullError } from '../queue/types.js';
import { truthy } from '../schemas/fields.js';
import { Img2ImgBody, Txt2ImgBody, type Img2ImgRequest, type Txt2ImgRequest } from '../schemas/generate.js';
import type { ServerState } from '../state.js';

/** Aborts when the client closes the connection before the answer is sent. */
function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new AbortError('The client closed the connection'));
  });
  return controller.signal;
}

/**
 * With a shared queue, a client's `Idempotency-Key` header names the job: the same key again
 * (a retry after a dropped connection) waits for the same job instead of adding another.
 */
function idempotencyKey(request: FastifyRequest): string | undefined {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,128}$/.test(key)) {
    throw new HttpError(400, 'The Idempotency-Key header must be 1–128 letters, digits, "_", "." or "-"');
  }
  return key;
}

async function generate(
  state: ServerState,
  job: { endpoint: 'txt2img' | 'img2img'; request: Txt2ImgRequest | Img2ImgRequest; idempotencyKey: string | undefined },
  plan: GenerationPlan,
  restoreAfterwards: boolean,
  reply: FastifyReply,
): Promise<GenerationOutput> {
  state.loras.checkPrompt(plan.prompt);
  // With a shared queue the workers hold the upscaler files and check the name.
  if (plan.hires && !state.options.redis) state.upscalers.require(plan.hires.upscaler);
  const checkpoint = plan.checkpoint === undefined ? state.currentCheckpoint() : state.checkpoint(plan.checkpoint);
  const clipSkip = plan.clipSkip ?? state.settings.clipSkip;
  if (!restoreAfterwards) {
    // A1111 keeps overridden settings when asked not to restore them.
    state.settings.checkpoint = checkpoint;
    state.settings.clipSkip = clipSkip;
  }
  const signal = disconnectSignal(reply);
  let output: GenerationOutput | undefined;
  try {
    output = await state.queue.add({ kind: 'generate', plan, checkpoint, clipSkip, ...job }, { signal });
  } catch (error) {
    if (error instanceof QueueFullError) throw new HttpError(503, error.message, { 'retry-after': String(error.retryAfter) });
    if (error instanceof AbortError) {
      // Nobody to answer when the client left; otherwise the server is closing.
      throw signal.aborted ? new HttpError(499, 'The client closed the connection') : new HttpError(503, error.message);
    }
    throw error;
  }
  void reply.header('x-sdnode-job-id', String(output!.job.id));
  if (output!.job.started !== undefined) void reply.header('x-sdnode-job-started', String(output!.job.started));
  if (output!.job.worker !== undefined) void reply.header('x-sdnode-worker', output!.job.worker);
  return output!;
}

export function generateRoutes(app: App, state: ServerState): void {
  app.post('/sdapi/v1/txt2img', { schema: { body: Txt2ImgBody } }, async (request, reply) => {
    const body = request.body as Txt2ImgRequest;
    const plan = planTxt2Img(body);
    const job = { endpoint: 'txt2img' as const, request: body, idempotencyKey: idempotencyKey(request) };
    const output = await generate(state, job, plan, truthy(body.override_settings_restore_afterwards, true), reply);
    return txt2imgResponse(body, plan, output);
  });

  app.post('/sdapi/v1/img2img', { schema: { body: Img2ImgBody } }, async (request, reply) => {
    const body = request.body as Img2ImgRequest;
    const plan = await planImg2Img(body);
    const job = { endpoint: 'img2img' as const, request: body, idempotencyKey: idempotencyKey(request) };
    const output = await generate(state, job, plan, truthy(body.override_settings_restore_afterwards, true), reply);
    return img2imgResponse(body, plan, output);
  });
}
