// `sdnode generate`: txt2img, img2img (--init-image), inpaint (--mask), depth2img (--depth-map),
// with A1111 names for the options, a parameters chunk in every PNG, --from to regenerate an
// image from its chunk, and comma-separated values for a labelled grid.
import { join } from 'node:path';

import { packageRoot } from '../native.js';
import { SCHEDULER_NAMES } from '../scheduler.js';
import type { StableDiffusion } from '../stable-diffusion.js';
import { BACKENDS, WEIGHT_TYPES } from '../types.js';
import { parseGenerate } from './generate/parse.js';
import { planJobs } from './generate/plan.js';
import { loadModel, runJobs } from './generate/run.js';
import { encodeOutputs, report, writeAll } from './generate/write.js';
import { abortOnInterrupt, CancelledError, cancelledOr } from './interrupt.js';
import { Progress } from './progress.js';

/** The model `--model demo` names: a tiny SD 1.x trained on pictures of shapes (tools/train-demo/), 64×64. */
export const DEMO_MODEL = join(packageRoot, 'models', 'demo-sd1-tiny.gguf');

export const GENERATE_HELP = `Usage: sdnode generate --model <file|folder|demo> --prompt <text> [options]

Text to image; with --init-image image to image, with --mask inpainting, with --depth-map
depth to image (on a depth model). Defaults follow diffusers: 50 steps, CFG scale 7.5, PNDM.

  -m, --model PATH         .safetensors/.ckpt/.gguf file or diffusers folder; "demo" is the tiny
                           model shipped in the package, 64×64: one shape (circle, square, triangle,
                           star, ring, cross) in a colour (red, orange, yellow, green, cyan, blue,
                           purple, pink), small or large, on a white, black, coloured or gradient
                           background, e.g. "a large red circle on a white background"
  -p, --prompt TEXT        A1111 attention syntax: (word:1.3), [word], BREAK
  -n, --negative-prompt TEXT
      --steps N            denoising steps (default 50)
      --cfg-scale X        classifier-free guidance (default 7.5)
      --sampler NAME       ${SCHEDULER_NAMES.join(', ')}
                           or A1111's names ("Euler a", "DPM++ 2M Karras", …) (default pndm)
      --seed N             default random; "random" or --seed=-1 picks one
      --width N, --height N  default: the model's size (img2img: the input image's);
                           not multiples of 8 are rounded down with a warning
      --batch-size N       images from one batch (files numbered name-1.png, name-2.png, …)
      --clip-skip N        A1111's Clip skip (1 = last layer)
  -o, --output FILE        .png (default, with A1111 parameters), .jpg/.jpeg or .webp
                           (default sdnode-<seed>.png)
      --quality N          JPEG/WebP quality (default 90)
      --init-image FILE    img2img / inpaint / depth2img input
      --strength X         how much of the input to repaint, 0–1 (img2img 0.8, inpaint 1)
      --mask FILE          inpaint: white (or opaque alpha) = repaint
      --depth-map FILE     depth2img: the depth map (16-bit PNGs keep their precision), or
                           "estimate" for the depth model's own estimator (DPT)
      --from IMAGE.png     take prompt, seed, sampler, steps, size, … from an image's
                           parameters; options given here override them
      --hires-scale X      A1111's hires fix: enlarge the result X times (1–8, default 2) and
                           denoise it again; any --hires-* flag turns it on
      --hires-width N, --hires-height N  its final size instead (both: covered, then cropped)
      --hires-upscaler M   latent (default), latent-antialiased, latent-bicubic,
                           latent-bicubic-antialiased, latent-nearest, latent-nearest-exact,
                           lanczos, nearest, or a Real-ESRGAN file (.pth/.safetensors)
      --hires-steps N      steps of the second pass (default --steps)
      --hires-denoise X    its denoising strength, 0–1 (default 0.7)
      --strict             refuse sizes that are not multiples of 8 instead of rounding
      --lora NAME[:W[:UNET_W]]  a LoRA (LoHa, LoKr) by name in --lora-dir, or a file path, at
                           strength W (default 1; a second number is the UNet's); repeatable.
                           <lora:NAME:W> in the prompt does the same
      --lora-dir DIR       folder of LoRA files, named by file name (repeatable)
      --embedding-dir DIR  folder of textual-inversion embeddings, each triggered by its file
                           name in the prompt (repeatable)
  Model: --weight-type ${WEIGHT_TYPES.join('|')}, --backend ${BACKENDS.join('|')},
         --threads N, --vae FILE, --prediction-type epsilon|v_prediction,
         --tiny-vae PATH (TAESD file or folder: decodes and encodes instead of the VAE, fast),
         --safety-checker on|off|PATH (diffusers' NSFW checker: on by default for a diffusers
         folder with safety_checker/; flagged images are written black and named on stderr),
         --text-encoder-device, --unet-device, --vae-device BACKEND|DEVICE (e.g. --vae-device cpu
         with a GPU backend; device names as \`sdnode devices\` lists them)
  Memory: --flash-attention, --vae-tiling (decode/encode in blended tiles), --offload (one
          network on the device at a time)
  Output: -q/--quiet (no progress), --json (results on stdout, progress as JSON lines on stderr),
          --verbose (stack traces)

Comma-separated values of --cfg-scale, --seed, --sampler, --steps, --clip-skip and --strength
make a grid: one labelled contact sheet in the output file (the first list across, the others
down), e.g. --cfg-scale 3,7.5,12 --seed 1,2.`;

export { readImageParameters } from './generate/parse.js';

/**
 * Runs `sdnode generate`: parse (generate/parse.ts) → plan the jobs (plan.ts) → load the model and
 * run them (run.ts) → encode and write the files, then report them (write.ts).
 */
export async function generate(args: string[]): Promise<void> {
  const request = await parseGenerate(args, DEMO_MODEL);
  const plan = planJobs(request.values);

  const progress = new Progress(Progress.modeFor(request, process.stderr.isTTY));
  const controller = new AbortController();
  const stopListening = abortOnInterrupt(controller);
  const started = performance.now();
  let sd: StableDiffusion | undefined;
  try {
    progress.stage('load');
    const loaded = await loadModel(request);
    sd = loaded.sd;
    const results = await runJobs(sd, loaded.hash, request, plan, progress, controller.signal);
    progress.done();
    if (controller.signal.aborted) throw new CancelledError('cancelled');

    const { files, grid } = await encodeOutputs(request, plan, results);
    if (controller.signal.aborted) throw new CancelledError('cancelled');
    await writeAll(files);
    report(request, plan, files, grid, (performance.now() - started) / 1000);
  } catch (error) {
    progress.done();
    throw cancelledOr(error, controller.signal);
  } finally {
    stopListening();
    await sd?.dispose();
  }
}
