import assert from 'node:assert/strict';
import { test } from 'node:test';

import { StableDiffusion } from '../lib/index.js';

test('StableDiffusion.load validates its options before anything else', async () => {
  await assert.rejects(StableDiffusion.load(undefined as never), TypeError);
  await assert.rejects(StableDiffusion.load({} as never), /Expected options.model to be a string/);
  await assert.rejects(StableDiffusion.load({ model: '' }), RangeError);
  await assert.rejects(StableDiffusion.load({ model: 'm', backend: 'metal' as never }), (e: Error) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /Expected options.backend to be one of auto, cpu, vulkan, cuda but received "metal"/);
    return true;
  });
  await assert.rejects(StableDiffusion.load({ model: 'm', threads: 0 }), /Expected integer options.threads between 1 and 1024 but received 0/);
  await assert.rejects(StableDiffusion.load({ model: 'm', threads: '2' as never }), TypeError);
  await assert.rejects(StableDiffusion.load({ model: 'm', weightType: 'q3_k' as never }), RangeError);
  await assert.rejects(StableDiffusion.load({ model: 'm', vaeTiling: 1 as never }), TypeError);
});
