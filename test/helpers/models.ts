// Tiny fixture models loaded once per test file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { StableDiffusion, type WeightType } from '../../lib/index.js';
import { fixturePath } from './goldens.js';

/**
 * Each fixture loaded at most once per weight type (none: as stored), on the CPU with 2 threads,
 * from a scratch folder named after `label`; `dispose()` frees the models and the folder (call it
 * in `after`).
 */
export function cpuModels(label: string): { model(fixture: string, weightType?: WeightType): Promise<StableDiffusion>; dispose(): Promise<void> } {
  const scratch = mkdtempSync(join(tmpdir(), `sdnode-${label}-`));
  const models = new Map<string, StableDiffusion>();
  return {
    async model(fixture: string, weightType?: WeightType): Promise<StableDiffusion> {
      const key = `${fixture}/${weightType ?? 'as stored'}`;
      let sd = models.get(key);
      if (!sd) {
        sd = await StableDiffusion.load({ model: fixturePath(fixture, scratch), backend: 'cpu', threads: 2, ...(weightType && { weightType }) });
        models.set(key, sd);
      }
      return sd;
    },
    async dispose(): Promise<void> {
      for (const sd of models.values()) await sd.dispose();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
