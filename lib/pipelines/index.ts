// The denoising pipelines in TypeScript over the component API (text encoder, UNet, VAE,
// schedulers, torch generator). Each follows its diffusers pipeline on CPU step for step: the
// same random draws from one generator in the same order, the same classifier-free guidance,
// the same scheduler calls, so a seed gives diffusers' latents.
//   txt2img   StableDiffusionPipeline (and A1111's hires fix: hires.ts)
//   img2img   StableDiffusionImg2ImgPipeline
//   inpaint   StableDiffusionInpaintPipeline (9-channel inpainting UNets, or latent blending
//             on ordinary 4-channel ones)
//   depth2img StableDiffusionDepth2ImgPipeline with a given depth map
//
// Each pipeline has its file; options.ts checks the options they share, denoise.ts runs the
// loop they share, from-image.ts prepares an input image, types.ts has their public types.
export { depth2img } from './depth2img.js';
export { img2img } from './img2img.js';
export { inpaint } from './inpaint.js';
export { txt2img } from './txt2img.js';
export { HIRES_UPSCALERS, OUTPUT_TYPES, PREVIEW_METHODS } from './types.js';
export type {
  Depth2ImgOptions, GenerationOptions, GenerationResult, HiresOptions, HiresUpscalerName, Img2ImgOptions, InpaintOptions, OutputType, PipelineModel, PreviewMethod,
  StageMemory, StepCallback, StepInfo, Txt2ImgOptions, Txt2ImgResult,
} from './types.js';
