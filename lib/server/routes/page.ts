// The web page at / (or /prefix/ in an app that mounts the plugin under a prefix): three static
// files shipped in the package (lib/server/page/), read once.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { FastifyInstance as App } from 'fastify';

import { packageRoot } from '../../native.js';

const PAGE_DIR = join(packageRoot, 'lib', 'server', 'page');

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

export function pageRoutes(app: App): void {
  for (const [url, { file, type }] of Object.entries(FILES)) {
    const content = readFileSync(join(PAGE_DIR, file));
    app.get(url, async (request, reply) => {
      // Under a prefix the page is /prefix/, so that its relative URLs (app.js, the API) resolve inside it.
      const q = request.url.indexOf('?');
      const path = q < 0 ? request.url : request.url.slice(0, q);
      if (url === '/' && !path.endsWith('/')) return reply.redirect(`${path}/${q < 0 ? '' : request.url.slice(q)}`);
      return reply.type(type).header('cache-control', 'no-cache').send(content);
    });
  }
}
