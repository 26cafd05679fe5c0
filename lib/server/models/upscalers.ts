// The hires fix's upscalers a server offers: A1111's latent modes, its pixel resizes (None,
// Lanczos, Nearest) and the Real-ESRGAN files it was started with (`upscalers`, `--upscaler`),
// loaded once and named by file name without extension, as A1111 lists them.
import { basename, extname, resolve } from 'node:path';

import { A1111_HIRES_UPSCALER_NAMES } from '../../pipelines/hires.js';
import type { HiresUpscalerName } from '../../pipelines/types.js';
import type { LoadOptions } from '../../stable-diffusion.js';
import { Upscaler, upscalerOptionsOf } from '../../upscaler.js';
import { invalidField } from '../http/errors.js';

/** GET /sdapi/v1/upscalers: one entry in A1111's shape. */
export interface UpscalerItem {
  name: string;
  model_name: string | null;
  model_path: string | null;
  model_url: string | null;
  scale: number;
}

// A1111's "None" does not upscale; the image is then resized to the target with Lanczos.
const PIXEL_RESIZES: [string, HiresUpscalerName][] = [['None', 'lanczos'], ['Lanczos', 'lanczos'], ['Nearest', 'nearest']];
const LATENT_MODES = Object.entries(A1111_HIRES_UPSCALER_NAMES).filter(([key]) => key.startsWith('latent')) as [HiresUpscalerName, string][];

export class UpscalerSet {
  readonly #models = new Map<string, Upscaler>();

  /** Loads every file on the models' backend and threads (an ERR_UPSCALER_FORMAT error names a bad one). */
  static async load(files: readonly string[], load: Omit<LoadOptions, 'model'>): Promise<UpscalerSet> {
    const options = upscalerOptionsOf(load);
    const set = new UpscalerSet();
    try {
      for (const file of files) {
        const name = basename(file, extname(file));
        if (set.#models.has(name)) throw new Error(`Two upscaler files are named ${JSON.stringify(name)}; rename one`);
        set.#models.set(name, await Upscaler.load(resolve(file), options));
      }
    } catch (error) {
      set.dispose();
      throw error;
    }
    return set;
  }

  /** A1111's /sdapi/v1/upscalers: the pixel resizes, then the loaded models. */
  list(): UpscalerItem[] {
    return [
      ...PIXEL_RESIZES.map(([name]) => ({ name, model_name: null, model_path: null, model_url: null, scale: 4 })),
      ...[...this.#models].map(([name, u]) => ({ name, model_name: name, model_path: u.info.path, model_url: null, scale: u.info.scale })),
    ];
  }

  /** A1111's /sdapi/v1/realesrgan-models: the loaded models alone. */
  realesrganModels(): { name: string; path: string; scale: number }[] {
    return [...this.#models].map(([name, u]) => ({ name, path: u.info.path, scale: u.info.scale }));
  }

  /** The names hr_upscaler takes, for messages. */
  names(): string[] {
    return [...LATENT_MODES.map(([, name]) => name), ...PIXEL_RESIZES.map(([name]) => name), ...this.#models.keys()];
  }

  /** hr_upscaler → what txt2img's `hires.upscaler` takes; undefined for a name this server lacks. */
  resolve(name: string): HiresUpscalerName | Upscaler | undefined {
    const latent = LATENT_MODES.find(([, label]) => label === name);
    if (latent) return latent[0];
    const pixels = PIXEL_RESIZES.find(([label]) => label === name);
    if (pixels) return pixels[1];
    return this.#models.get(name);
  }

  /** hr_upscaler resolved, or a 422 naming the upscalers this server has. */
  require(name: string): HiresUpscalerName | Upscaler {
    const found = this.resolve(name);
    if (found === undefined) {
      throw invalidField(['hr_upscaler'], `hr_upscaler ${JSON.stringify(name)} is not one of ${this.names().map((n) => JSON.stringify(n)).join(', ')}`, 'upscaler');
    }
    return found;
  }

  dispose(): void {
    for (const u of this.#models.values()) u.dispose();
    this.#models.clear();
  }
}

/** A1111's /sdapi/v1/latent-upscale-modes. */
export function latentUpscaleModes(): { name: string }[] {
  return LATENT_MODES.map(([, name]) => ({ name }));
}
