// The list endpoints A1111 clients read at start: samplers and schedule types we run, the hires
// fix's upscalers and latent modes, and the lists of things this server does not have yet (VAEs,
// …), answered empty so that the clients that read them work unchanged. LoRAs and embeddings:
// routes/networks.ts.
import type { FastifyInstance as App } from 'fastify';

import { SAMPLERS, SCHEDULE_TYPES } from '../generation/samplers.js';
import { latentUpscaleModes } from '../models/upscalers.js';
import type { ServerState } from '../state.js';

const EMPTY_LISTS = [
  'sd-vae', 'hypernetworks', 'face-restorers', 'prompt-styles', 'script-info',
  'extensions',
];

export function listRoutes(app: App, state: ServerState): void {
  app.get('/sdapi/v1/samplers', async () => SAMPLERS);
  app.get('/sdapi/v1/upscalers', async () => state.upscalers.list());
  app.get('/sdapi/v1/latent-upscale-modes', async () => latentUpscaleModes());
  app.get('/sdapi/v1/realesrgan-models', async () => state.upscalers.realesrganModels());
  app.get('/sdapi/v1/schedulers', async () => SCHEDULE_TYPES);
  for (const name of EMPTY_LISTS) app.get(`/sdapi/v1/${name}`, async () => []);
  app.get('/sdapi/v1/scripts', async () => ({ txt2img: [], img2img: [] }));
}
