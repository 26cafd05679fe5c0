// GET /sdapi/v1/progress, POST /interrupt and /skip: the running job as A1111 reports it, with
// the latest preview (the latents mapped to RGB, an eighth of the image's size, or TAESD's full-size
// decode when the model was loaded with a tiny VAE) as current_image.
import type { FastifyInstance as App } from 'fastify';
import { Type } from 'typebox';

import { jobTimestamp } from '../generation/run.js';
import type { ServerState } from '../state.js';

const ProgressQuery = Type.Object({ skip_current_image: Type.Optional(Type.Boolean()) }, { additionalProperties: true });

export function progressRoutes(app: App, state: ServerState): void {
  app.get('/sdapi/v1/progress', { schema: { querystring: ProgressQuery } }, async (request) => {
    const { skip_current_image: skipImage } = request.query as { skip_current_image?: boolean };
    const { running, waiting, capacity, active, finished } = await state.queue.state();
    const queue = { waiting, capacity, ...(active !== undefined && { active }), ...finished };
    if (running === undefined) {
      const idle = { skipped: false, interrupted: false, stopping_generation: false, job: '', job_count: 0, job_timestamp: '0', job_no: 0, sampling_step: 0, sampling_steps: 0 };
      return { progress: 0, eta_relative: 0, state: idle, current_image: null, textinfo: null, queue };
    }
    // A1111's estimate: 1 % for starting, then images done and the current image's steps.
    let progress = 0.01 + running.jobNo / running.jobCount;
    if (running.samplingSteps > 0) progress += (running.samplingStep / running.samplingSteps) / running.jobCount;
    const elapsed = (Date.now() - running.startedAt) / 1000;
    const eta = elapsed / progress - elapsed;
    const preview = skipImage ? null : await running.preview();
    return {
      progress: Math.min(progress, 1),
      eta_relative: eta,
      state: {
        skipped: running.skipped,
        interrupted: running.interrupted,
        stopping_generation: false,
        job: running.job,
        job_count: running.jobCount,
        job_timestamp: jobTimestamp(new Date(running.startedAt)),
        job_no: running.jobNo,
        sampling_step: running.samplingStep,
        sampling_steps: running.samplingSteps,
      },
      current_image: preview === null ? null : preview.toString('base64'),
      textinfo: null,
      queue,
    };
  });

  app.post('/sdapi/v1/interrupt', async () => {
    await state.queue.interrupt();
    return {};
  });

  app.post('/sdapi/v1/skip', async () => {
    await state.queue.skip();
    return {};
  });
}
