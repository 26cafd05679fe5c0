// A1111's --api-auth: HTTP Basic authentication on every route of the plugin (the page and its
// assets included), with A1111's 401 body. Passwords are compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';

import basicAuth from '@fastify/basic-auth';
import type { FastifyInstance } from 'fastify';

import { HttpError } from './errors.js';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Requires one of `credentials` (user → password) on every request of `app`'s routes. */
export async function requireBasicAuth(app: FastifyInstance, credentials: Map<string, string>): Promise<void> {
  const expected = new Map([...credentials].map(([user, password]) => [user, digest(password)]));
  await app.register(basicAuth, {
    authenticate: { realm: 'sdnode' },
    validate: async (user, password) => {
      const want = expected.get(user);
      // Hashing first makes the comparison constant-time whatever the lengths (and the user).
      const match = timingSafeEqual(want ?? digest(`${password}\0`), digest(password));
      if (want === undefined || !match) throw new HttpError(401, 'Incorrect username or password');
    },
  });
  app.addHook('onRequest', app.basicAuth);
}
