// Tiny fixture models loaded once per test file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { StableDiffusion } from '../../lib/index.js';
import { fixturePath } from './goldens.js';

/**
 * Each fixture loaded at most once, on the CPU with 2 threads and f32 weights, from a scratch
 * folder named after `label`; `dispose()` frees the models and the folder (call it in `after`).
 */
export function cpuF32Models(label: string): { model(fixture: string): Promise<StableDiffusion>; dispose(): Promise<void> } {
  const scratch = mkdtempSync(join(tmpdir(), `sdnode-${label}-`));
  const models = new Map<string, StableDiffusion>();
  return {
    async model(fixture: string): Promise<StableDiffusion> {
      let sd = models.get(fixture);
      if (!sd) {
        sd = await StableDiffusion.load({ model: fixturePath(fixture, scratch), backend: 'cpu', threads: 2, weightType: 'f32' });
        models.set(fixture, sd);
      }
      return sd;
    },
    async dispose(): Promise<void> {
      for (const sd of models.values()) await sd.dispose();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
