// The server as a Fastify plugin: options checked, the start model loaded, then A1111's routes
// (and the page) with their own schema validation, error format, JSON parsing, body limit,
// CORS and authentication, all kept inside the plugin's context so that a host app keeps its own.
import { stat } from 'node:fs/promises';

import cors from '@fastify/cors';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import secureJson from 'secure-json-parse';

import { requireBasicAuth } from './http/auth.js';
import { handleError, RequestValidationError } from './http/errors.js';
import { checkServerOptions, type CheckedServerOptions, type ServerOptions } from './options.js';
import { generateRoutes } from './routes/generate.js';
import { infoRoutes } from './routes/info.js';
import { listRoutes } from './routes/lists.js';
import { networkRoutes } from './routes/networks.js';
import { optionsRoutes } from './routes/options.js';
import { pageRoutes } from './routes/page.js';
import { progressRoutes } from './routes/progress.js';
import { ServerState } from './state.js';
import { ArgumentRangeError } from '../errors.js';

// What Fastify's register() itself takes; not ours to check.
const REGISTER_OPTIONS = ['prefix', 'logLevel', 'logSerializers'];

async function checkFolder(path: string | undefined, flag: string): Promise<void> {
  if (path === undefined) return;
  const s = await stat(path).catch(() => undefined);
  if (!s?.isDirectory()) throw new ArgumentRangeError(`Expected options.${flag} to be a folder but ${path} is not one`);
}

/**
 * JSON bodies, whatever their content type says (A1111's clients do not all say); an empty body
 * is no body. Keys that would reach an object's prototype are refused (secure-json-parse).
 */
function parseJson(app: FastifyInstance, bodyLimit: number): void {
  const parse = (_request: unknown, text: string | Buffer, done: (error: Error | null, body?: unknown) => void) => {
    const source = typeof text === 'string' ? text : text.toString('utf8');
    if (source.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, secureJson.parse(source, { protoAction: 'error', constructorAction: 'error' }));
    } catch (error) {
      done(new RequestValidationError([{ loc: ['body'], msg: `The body is not valid JSON: ${(error as Error).message}`, type: 'json_invalid' }]));
    }
  };
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, parse);
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, parse);
}

async function setUp(app: FastifyInstance, o: CheckedServerOptions): Promise<void> {
  await checkFolder(o.modelsDir, 'modelsDir');
  await checkFolder(o.loraDir, 'loraDir');
  await checkFolder(o.embeddingDir, 'embeddingDir');
  const state = await ServerState.create(o);
  app.addHook('onClose', async () => state.close());

  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.setErrorHandler(handleError);
  parseJson(app, o.bodyLimit);
  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= o.bodyLimit;
  });
  if (o.corsOrigin) await app.register(cors, { origin: o.corsOrigin.includes('*') ? '*' : o.corsOrigin });
  if (o.credentials) await requireBasicAuth(app, o.credentials);

  generateRoutes(app, state);
  progressRoutes(app, state);
  optionsRoutes(app, state);
  listRoutes(app, state);
  networkRoutes(app, state);
  infoRoutes(app, state);
  if (o.page) pageRoutes(app);
}

/**
 * The A1111-compatible API (`/sdapi/v1/…`, `/sdnode/v1/info`) and the web page as a Fastify
 * plugin, for an app that already runs Fastify: `await app.register(sdnodeServer, { model })`.
 * Registration loads the model; closing the app cancels the jobs and frees it.
 */
export const sdnodeServer: FastifyPluginAsync<ServerOptions> = async (app, options) => {
  const own = Object.fromEntries(Object.entries(options).filter(([key]) => !REGISTER_OPTIONS.includes(key)));
  await setUp(app, checkServerOptions(own));
};
