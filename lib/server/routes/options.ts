// GET/POST /sdapi/v1/options, GET /sd-models, POST /refresh-checkpoints. The settings honoured
// are the model (sd_model_checkpoint: a switch waits its turn in the queue, as A1111's waits
// for its lock) and Clip skip (CLIP_stop_at_last_layers); other keys are accepted and ignored,
// since clients such as Open WebUI send back everything GET returned.
import type { FastifyInstance as App } from 'fastify';

import { QueueFullError } from '../queue/types.js';
import { HttpError } from '../http/errors.js';
import { body, int, str } from '../schemas/fields.js';
import type { ServerState } from '../state.js';

const OptionsBody = body({ sd_model_checkpoint: str(1000), CLIP_stop_at_last_layers: int(1, 12) });

export function optionsRoutes(app: App, state: ServerState): void {
  app.get('/sdapi/v1/options', async () => {
    const checkpoint = state.currentCheckpoint();
    return {
      sd_model_checkpoint: checkpoint.title,
      sd_checkpoint_hash: checkpoint.sha256 ?? null,
      CLIP_stop_at_last_layers: state.settings.clipSkip,
      sd_vae: 'Automatic',
      samples_format: 'png',
      enable_pnginfo: true,
      live_previews_enable: true,
      show_progress_every_n_steps: 1,
    };
  });

  app.post('/sdapi/v1/options', { schema: { body: OptionsBody } }, async (request, reply) => {
    const options = request.body as { sd_model_checkpoint?: string | null; CLIP_stop_at_last_layers?: number | null };
    if (options.sd_model_checkpoint) {
      const checkpoint = state.checkpoint(options.sd_model_checkpoint);
      if (checkpoint.filename !== state.settings.checkpoint.filename) {
        try {
          await state.queue.add({ kind: 'load', checkpoint });
        } catch (error) {
          if (error instanceof QueueFullError) throw new HttpError(503, error.message, { 'retry-after': String(error.retryAfter) });
          throw error;
        }
        state.settings.checkpoint = checkpoint;
      }
    }
    if (options.CLIP_stop_at_last_layers !== undefined && options.CLIP_stop_at_last_layers !== null) {
      state.settings.clipSkip = options.CLIP_stop_at_last_layers;
    }
    return reply.type('application/json').send('null');
  });

  app.get('/sdapi/v1/sd-models', async () =>
    state.catalog.list().map((c) => ({ title: c.title, model_name: c.modelName, hash: c.hash ?? null, sha256: c.sha256 ?? null, filename: c.filename, config: null })),
  );

  app.post('/sdapi/v1/refresh-checkpoints', async (_request, reply) => {
    await state.catalog.refresh();
    return reply.type('application/json').send('null');
  });
}
