// `createServer(options)`: the A1111-compatible HTTP server of `sdnode serve` as a library call.
import type { Server } from 'node:http';

import Fastify, { type FastifyInstance } from 'fastify';

import { checkServerOptions, type ServerOptions } from './options.js';
import { sdnodeServer } from './plugin.js';

export type { ServerOptions } from './options.js';
export { sdnodeServer } from './plugin.js';

/** What `createServer` returns. */
export interface SdServer {
  /** The Fastify instance, for adding routes or hooks of your own. */
  readonly fastify: FastifyInstance;
  /** The Node `http.Server` (listening once `listen` has resolved). */
  readonly server: Server;
  /**
   * Starts listening (default 127.0.0.1:7860; port 0 picks a free one) and resolves with the
   * base URL, e.g. `http://127.0.0.1:7860`.
   */
  listen(options?: { host?: string; port?: number }): Promise<string>;
  /** Stops listening, cancels waiting jobs, stops the running one and frees the model. */
  close(): Promise<void>;
}

/**
 * An AUTOMATIC1111-compatible HTTP server for Stable Diffusion: `/sdapi/v1/txt2img`, `img2img`,
 * `progress`, `interrupt`, `options`, … and a web page at `/`, one generation at a time from a
 * FIFO queue. Resolves once the model is loaded; call `listen()` to serve.
 */
export async function createServer(options: ServerOptions): Promise<SdServer> {
  const { logger } = checkServerOptions(options);
  const app = Fastify({ logger, forceCloseConnections: true });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ detail: 'Not Found' });
  });
  await app.register(sdnodeServer, options);
  await app.ready();
  return {
    fastify: app,
    server: app.server,
    async listen({ host = '127.0.0.1', port = 7860 } = {}) {
      await app.listen({ host, port });
      const address = app.server.address();
      const actualPort = typeof address === 'object' && address !== null ? address.port : port;
      const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
      return `http://${shown}:${actualPort}`;
    },
    close: () => app.close(),
  };
}
