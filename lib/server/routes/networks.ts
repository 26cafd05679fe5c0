// LoRAs and textual-inversion embeddings: GET /sdapi/v1/loras and /embeddings in A1111's shapes,
// POST /refresh-loras (lists --lora-dir again) and /refresh-embeddings (the loaded model reads
// --embedding-dir again; calls already running keep what they started with).
import type { FastifyInstance as App } from 'fastify';

import type { ServerState } from '../state.js';

export function networkRoutes(app: App, state: ServerState): void {
  app.get('/sdapi/v1/loras', async () => state.loras.list());

  app.post('/sdapi/v1/refresh-loras', async (_request, reply) => {
    await state.loras.refresh();
    return reply.type('application/json').send('null');
  });

  app.get('/sdapi/v1/embeddings', async () => state.embeddingFacts.describe(state.models.current?.sd));

  app.post('/sdapi/v1/refresh-embeddings', async (_request, reply) => {
    await state.models.current?.sd.reloadEmbeddings();
    return reply.type('application/json').send('null');
  });
}
