export { Tensor } from './tensor.js';
export type { TensorLike } from './tensor.js';
export { StableDiffusion, convertModel } from './stable-diffusion.js';
export type { LoadOptions } from './stable-diffusion.js';
export { BACKENDS, NETWORKS, WEIGHT_TYPES, PREDICTION_TYPES, GGUF_WRITE_TYPES, PROMPT_MODES, TORCH_KERNELS } from './types.js';
export type {
  Backend, DeviceChoice, Network, WeightType, PredictionType, ModelInfo, LoadedModelInfo, ModelDevice, WeightInfo, ModelMemory,
  DeviceMemory, MemoryUsage, ConvertOptions, ConvertResult, ModelFileFormat, ModelFileInfo, ModelTensorInfo, GgufWriteType,
  GgufWriteResult, PromptMode, PromptChunk, TokenizedPrompt, ModelLayout, ModelDetails, ModelInspection, CanonicalTensorInfo,
  UNetDetails, VaeDetails, TextEncoderDetails, Seed, TorchKernel, GenerationParameters, HiresParameters, PipelineName, LoraSpec, AppliedLora,
  LoraFileReport, LoraStatus, NativeLoraRequest, EmbeddingTrigger, UsedEmbedding,
} from './types.js';
export { readEmbeddingFile, EMBEDDING_EXTENSIONS } from './embeddings.js';
export type { SkippedEmbedding, TextualInversion } from './embeddings.js';
export { parseLoraTags, stripLoraTags, LORA_EXTENSIONS } from './lora.js';
export type { LoraTag, ParsedLoraTags } from './lora.js';
export type { NetworkHashes } from './model-hash.js';
export { systemInfo, listDevices } from './system.js';
export type { SystemInfo, DeviceInfo, DeviceType, Variant, GpuVariant, GpuVariantStatus, GpuBackend, BinarySource } from './system.js';
export { inspectModelFile, readModelTensor, writeGgufFile } from './model-file.js';
export type { GgufTensorInput, GgufWriteOptions } from './model-file.js';
export { Tokenizer, parsePromptAttention, CLIP_VOCAB_PATH } from './tokenizer.js';
export type { TokenizerOptions, DecodeOptions, TokenizePromptOptions, WeightedText, TokenIds } from './tokenizer.js';
export { inspectModel, readCanonicalTensor, readCanonicalTensors } from './model.js';
export type { InspectModelOptions } from './model.js';
export { StableDiffusionError, AbortError, ArgumentTypeError, ArgumentRangeError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { createScheduler, Scheduler, SCHEDULER_NAMES, A1111_SCHEDULER_NAMES, TIMESTEP_SPACINGS } from './scheduler.js';
export type { SchedulerName, SchedulerOverrides, TimestepSpacing, NoiseFunction } from './scheduler.js';
export { randn, TorchGenerator, MAX_SEED, MAX_RANDN_SIZE } from './rng.js';
export type { RandnOptions } from './rng.js';
export { Vae, DEFAULT_VAE_TILE_SIZE } from './vae.js';
export { TinyVae } from './tiny-vae.js';
export type { TinyVaeInfo } from './tiny-vae.js';
export { SafetyChecker } from './safety-checker.js';
export { DepthEstimator } from './depth-estimator.js';
export type { DepthEstimatorInfo, DepthEstimatorLoadOptions } from './depth-estimator.js';
export type { DptProcessorConfig } from './dpt-image-processor.js';
export type { SafetyCheckerInfo, SafetyCheckResult, SafetyPixelCheck } from './safety-checker.js';
export {
  Upscaler, UpscaledImage, upscale, DEFAULT_UPSCALE_TILE_SIZE, DEFAULT_UPSCALE_TILE_OVERLAP, MAX_UPSCALE_OUTPUT_PIXELS, UPSCALER_WEIGHT_TYPES,
} from './upscaler.js';
export type { UpscalerLoadOptions, UpscalerInfo, UpscaleOptions, UpscaleFileOptions, UpscaleProgress } from './upscaler.js';
export type { LatentDistribution, VaeTilingOptions } from './vae.js';
export { UNet } from './unet.js';
export { ClipTextEncoder, MAX_CLIP_SKIP } from './text-encoder.js';
export type { TextEncodeOptions, EncodePromptOptions, PromptEmbeddings } from './text-encoder.js';
export { txt2img, img2img, inpaint, depth2img, OUTPUT_TYPES, PREVIEW_METHODS, HIRES_UPSCALERS } from './pipelines/index.js';
export type {
  GenerationOptions, Txt2ImgOptions, Img2ImgOptions, InpaintOptions, Depth2ImgOptions, GenerationResult, Txt2ImgResult,
  StepInfo, StepCallback, OutputType, PreviewMethod, PipelineModel, StageMemory, HiresOptions, HiresUpscalerName,
} from './pipelines/index.js';
export { interpolate, INTERPOLATION_MODES } from './interpolate.js';
export type { InterpolationMode } from './interpolate.js';
export { latentPreview } from './latent-preview.js';
export { readImage, readMask, readDepthMap, resizeImage, encodeImage, saveImage, toRgbBytes, formatForPath, IMAGE_FORMATS } from './image.js';
export type { ImageInput, RawImage, ImageFormat, EncodeImageOptions } from './image.js';
export { formatParameters, parseParameters, toInfotext, promptWithLoraTags, readPngText, setPngText, samplerLabel, A1111_SAMPLER_NAMES } from './png-parameters.js';
export type { InfotextParameters, ParsedParameters, InfotextContext } from './png-parameters.js';
export { modelHash, modelSha256, loraHash, embeddingHash, networkHashes } from './model-hash.js';
export { createServer, sdnodeServer } from './server/index.js';
export type { ServerOptions, SdServer } from './server/index.js';
export { createWorker } from './queue/worker.js';
export type { WorkerOptions, SdWorker } from './queue/worker.js';
export { checkJobData, JOB_FORMAT_VERSION, DEFAULT_QUEUE_NAME } from './queue/payload.js';
export type { GenerationJobData, Txt2ImgJobData, Img2ImgJobData, GenerationJobProgress, GenerationJobResult, Txt2ImgRequest, Img2ImgRequest } from './queue/payload.js';
