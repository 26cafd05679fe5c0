// The list endpoints A1111 clients read at start: samplers and schedule types we run, and the
// lists of things this server does not have yet (upscalers, VAEs, …), answered empty so that
// the clients that read them work unchanged. LoRAs and embeddings: routes/networks.ts.
import type { FastifyInstance as App } from 'fastify';

import { SAMPLERS, SCHEDULE_TYPES } from '../generation/samplers.js';

const EMPTY_LISTS = [
  'upscalers', 'latent-upscale-modes', 'sd-vae', 'hypernetworks', 'face-restorers', 'realesrgan-models', 'prompt-styles', 'script-info',
  'extensions',
];

export function listRoutes(app: App): void {
  app.get('/sdapi/v1/samplers', async () => SAMPLERS);
  app.get('/sdapi/v1/schedulers', async () => SCHEDULE_TYPES);
  for (const name of EMPTY_LISTS) app.get(`/sdapi/v1/${name}`, async () => []);
  app.get('/sdapi/v1/scripts', async () => ({ txt2img: [], img2img: [] }));
}
