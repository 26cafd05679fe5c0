// --api-auth: every route the server has (read from Fastify's own route table, so a route added
// later is covered too), the page and its assets included, answers 401 without credentials or
// with wrong ones, and works with any of the configured users.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { call, scratch, startServer } from './helpers/server.js';

const tmp = scratch('server-auth');
let url = '';
let routes: { path: string; method: string }[] = [];
let close: () => Promise<void> = async () => {};
before(async () => {
  const started = await startServer({ apiAuth: 'alice:s3cret,bob:pa:ss' });
  url = started.url;
  close = started.close;
  for (const line of started.server.fastify.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /── (\S+) \(([^)]+)\)/.exec(line);
    if (!match) continue;
    const path = match[1] === '/' ? '/' : `/${match[1]}`;
    for (const method of match[2]!.split(', ')) if (method !== 'HEAD') routes.push({ path, method });
  }
});
after(async () => {
  await close();
  tmp.dispose();
});

const basic = (credentials: string) => ({ authorization: `Basic ${Buffer.from(credentials).toString('base64')}` });

const BODIES: Record<string, unknown> = {
  '/sdapi/v1/txt2img': { prompt: 'x', steps: 1, width: 64, height: 64 },
  '/sdapi/v1/png-info': { image: '' },
};

async function request(path: string, method: string, headers: Record<string, string>) {
  const body = method === 'POST' ? (BODIES[path] ?? {}) : undefined;
  return call(url, path, body, { method, headers });
}

test('the route table has the API, the page and its assets', () => {
  const paths = routes.map((r) => `${r.method} ${r.path}`);
  for (const expected of ['GET /', 'GET /app.js', 'GET /style.css', 'POST /sdapi/v1/txt2img', 'POST /sdapi/v1/img2img', 'GET /sdapi/v1/progress', 'POST /sdapi/v1/options', 'GET /sdnode/v1/info']) {
    assert.ok(paths.includes(expected), expected);
  }
  assert.ok(routes.length >= 25, `${routes.length} routes`);
});

test('every route is 401 without credentials, with a Basic challenge and A1111\'s body', async () => {
  for (const { path, method } of routes) {
    const answer = await request(path, method, {});
    assert.equal(answer.status, 401, `${method} ${path}`);
    assert.match(answer.headers.get('www-authenticate') ?? '', /^Basic realm="sdnode"/, `${method} ${path}`);
    assert.equal(typeof answer.body.detail, 'string', `${method} ${path}`);
  }
});

test('wrong users, wrong passwords and malformed headers are 401', async () => {
  for (const headers of [basic('alice:wrong'), basic('mallory:s3cret'), basic('alice:'), basic('bob:pa'), { authorization: 'Bearer s3cret' }, { authorization: 'Basic !!!' }]) {
    for (const path of ['/', '/sdapi/v1/options']) {
      const answer = await request(path, 'GET', headers);
      assert.equal(answer.status, 401, `${JSON.stringify(headers)} ${path}`);
    }
  }
  const wrong = await request('/sdapi/v1/options', 'GET', basic('alice:wrong'));
  assert.equal(wrong.body.detail, 'Incorrect username or password');
});

test('every route answers each configured user', async () => {
  for (const credentials of ['alice:s3cret', 'bob:pa:ss']) {
    for (const { path, method } of routes) {
      const answer = await request(path, method, basic(credentials));
      assert.notEqual(answer.status, 401, `${method} ${path} as ${credentials}`);
      assert.ok(answer.status < 500, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  }
  const generated = await request('/sdapi/v1/txt2img', 'POST', basic('bob:pa:ss'));
  assert.equal(generated.status, 200);
  assert.equal(generated.body.images.length, 1);
});

test('--cors-origin: browsers on that origin may call the API (preflight needs no credentials); others may not', async () => {
  const cors = await startServer({ apiAuth: 'alice:s3cret', corsOrigin: 'http://app.example' });
  try {
    const preflight = await fetch(`${cors.url}/sdapi/v1/txt2img`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://app.example');
    const allowed = await call(cors.url, '/sdapi/v1/samplers', undefined, { headers: { origin: 'http://app.example', ...basic('alice:s3cret') } });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://app.example');
    const other = await call(cors.url, '/sdapi/v1/samplers', undefined, { headers: { origin: 'http://evil.example', ...basic('alice:s3cret') } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  } finally {
    await cors.close();
  }
  // Without --cors-origin no CORS headers at all.
  const plain = await call(url, '/sdapi/v1/samplers', undefined, { headers: { origin: 'http://app.example', ...basic('alice:s3cret') } });
  assert.equal(plain.headers.get('access-control-allow-origin'), null);
});
