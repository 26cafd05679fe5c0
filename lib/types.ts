// Types and constants that several parts of lib/ share, and every type that crosses the native
// boundary (lib/native.ts types the addon with them). This file imports nothing, so that any
// module may import it without making a cycle.

// ─── Loading: backends, devices, weight and prediction types ─────────────────────────────────

/** The backends `backend` accepts: `'auto'` takes CUDA, then Vulkan, then the CPU. */
export const BACKENDS = ['auto', 'cpu', 'vulkan', 'cuda'] as const;
/** One of {@link BACKENDS}. */
export type Backend = (typeof BACKENDS)[number];

/** Most 77-token chunks a prompt may make: the UNet's context is at most 64 · 77 tokens long. */
export const MAX_PROMPT_CHUNKS = 64;

/** Storage types a model's weights can be converted to at load time or by `convertModel`. */
export const WEIGHT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q5_0', 'q5_1', 'q4_0', 'q4_1'] as const;
/** One of {@link WEIGHT_TYPES}. */
export type WeightType = (typeof WEIGHT_TYPES)[number];

/** What the UNet predicts: the noise (`epsilon`, SD 1.x and SD 2 base) or v (`v_prediction`, SD 2 768). */
export const PREDICTION_TYPES = ['epsilon', 'v_prediction'] as const;
/** One of {@link PREDICTION_TYPES}. */
export type PredictionType = (typeof PREDICTION_TYPES)[number];

/** The networks a model is made of, as `devices` and the memory reports name them. */
export const NETWORKS = ['textEncoder', 'unet', 'vae'] as const;
/** One of {@link NETWORKS}. */
export type Network = (typeof NETWORKS)[number];

/**
 * Where to put a network: a backend (`'auto'`, `'cpu'`, `'vulkan'`, `'cuda'`: its first device)
 * or a device's name as `listDevices()` gives it (`'Vulkan1'`, `'CUDA0'`).
 */
export type DeviceChoice = Backend | (string & {});

/** A device a loaded model's network runs on (`sd.device`, `sd.devices`). */
export interface ModelDevice {
  /** ggml's device name, as `listDevices()` gives it: `CPU`, `Vulkan0`, `CUDA0`, … */
  name: string;
  /** The device's description as its driver gives it (e.g. the GPU's or the CPU's name). */
  description: string;
  /** The backend that drives it: `CPU`, `Vulkan`, `CUDA`. */
  backend: string;
  /** CPU threads (used by the CPU backend only). */
  threads: number;
}

/** What a model is, as `sd.info` gives it. */
export interface ModelInfo {
  /** `sd1`: Stable Diffusion 1.x (CLIP ViT-L/14); `sd2`: 2.x (OpenCLIP ViT-H/14). */
  family: 'sd1' | 'sd2';
  /** `base` text to image (4-channel UNet), `inpaint` (9 channels) or `depth` (5 channels). */
  variant: 'base' | 'inpaint' | 'depth';
  /** What the UNet predicts (see {@link PREDICTION_TYPES}). */
  predictionType: PredictionType;
}

// ─── Model description (detection) ───────────────────────────────────────────────────────────

/** Containers a model file can be: safetensors, GGUF, or a PyTorch (pickle) checkpoint. */
export type ModelFileFormat = 'safetensors' | 'gguf' | 'checkpoint';

/** `diffusers`: a pipeline folder; `ldm`: the original checkpoint names; `canonical`: our GGUF. */
export type ModelLayout = 'diffusers' | 'ldm' | 'canonical';

/** The UNet's configuration, as detection found it. */
export interface UNetDetails {
  /** 4 text-to-image, 9 inpainting, 5 depth. */
  inChannels: number;
  /** 4: the prediction has the latents' shape. */
  outChannels: number;
  /** Per level, e.g. [320, 640, 1280, 1280]. */
  blockChannels: number[];
  /** Per level (down order): whether it has cross-attention transformer blocks. */
  crossAttention: boolean[];
  /** Attention heads per level; the mid block uses the last. */
  heads: number[];
  /** ResNet blocks per level (2 for SD). */
  layersPerBlock: number;
  /** Transformer blocks per attention (1 for SD). */
  transformerDepth: number;
  /** The text embeddings' width that cross-attention takes (768 SD1, 1024 SD2). */
  contextDim: number;
  /** Width of the timestep embedding (4 × the first block's channels). */
  timeEmbedDim: number;
  /** SD2: linear proj_in/proj_out; SD1: 1x1 convolutions. */
  linearProjection: boolean;
}

/** The VAE's configuration, as detection found it. */
export interface VaeDetails {
  /** Per level, e.g. [128, 256, 512, 512]. */
  blockChannels: number[];
  /** ResNet blocks per level (2 for SD). */
  layersPerBlock: number;
  /** Latent channels (4). */
  latentChannels: number;
  /** 0.18215 for SD 1.x/2.x, or what the VAE's config says. */
  scalingFactor: number;
}

/** The CLIP text encoder's configuration, as detection found it. */
export interface TextEncoderDetails {
  /** Vocabulary size (49408). */
  vocabSize: number;
  /** The longest id sequence (77). */
  maxPositions: number;
  /** Width of the embeddings (768 SD 1.x, 1024 SD 2.x). */
  hidden: number;
  /** Width of the MLP's hidden layer. */
  intermediate: number;
  /** Attention heads. */
  heads: number;
  /** Layers stored in the file. */
  layers: number;
  /** Layers SD runs: one fewer than stored for SD2's original checkpoints (SD uses the penultimate). */
  layersUsed: number;
  /** The MLP's activation: `quick_gelu` (CLIP, SD 1.x) or `gelu` (OpenCLIP, SD 2.x). */
  activation: 'quick_gelu' | 'gelu';
  /** Epsilon of the layer norms. */
  layerNormEps: number;
  /** `<|endoftext|>` for SD1, `!` for SD2, or what the folder's tokenizer config says. */
  padToken: string;
}

/** Everything detection concludes about a model (`inspectModel(path).info`). */
export interface ModelDetails extends ModelInfo {
  /** Where `predictionType` came from: `option`, `scheduler config`, `metadata …`, `heuristic: …`. */
  predictionTypeSource: string;
  /** Default width and height: 768 for SD2 v-prediction, 512 otherwise (or the folder's config). */
  imageSize: number;
  /** The text embeddings' width (768 SD1, 1024 SD2). */
  contextDim: number;
  /** How the tensors are named in the source. */
  layout: ModelLayout;
  /** The container of the (main) file. */
  format: ModelFileFormat;
  /** The file or folder the model was read from. */
  path: string;
  /** Tensors in the source that belong to no component (EMA copies, DDPM buffers, …). */
  ignoredTensors: number;
  /** Canonical tensors the networks do not read (e.g. SD2's last OpenCLIP layer). */
  unusedTensors: string[];
  /** The UNet's configuration. */
  unet: UNetDetails;
  /** The VAE's configuration. */
  vae: VaeDetails;
  /** The text encoder's configuration. */
  textEncoder: TextEncoderDetails;
}

/** `sd.info`: what detection concluded about the loaded model. */
export interface LoadedModelInfo extends Omit<ModelDetails, 'ignoredTensors' | 'unusedTensors'> {}

/** One tensor of a model under its canonical name. */
export interface CanonicalTensorInfo {
  /** Canonical name, e.g. `unet.down_blocks.0.attentions.0.proj_in.weight`. */
  name: string;
  /** Outermost first, as PyTorch lists it. */
  shape: number[];
  /** Storage type in the file: `f32`, `f16`, `bf16`, `q8_0`, … */
  type: string;
}

/** What `inspectModel` returns: the detected configuration and every canonical tensor. */
export interface ModelInspection {
  /** The detected configuration. */
  info: ModelDetails;
  /** Every tensor the networks read, by canonical name. */
  tensors: CanonicalTensorInfo[];
}

// ─── Loaded weights and memory ───────────────────────────────────────────────────────────────

/** One loaded weight (`sd.weights()`). */
export interface WeightInfo {
  /** Canonical name, e.g. `unet.conv_in.weight`. */
  name: string;
  /** Storage type as loaded: `f32`, `f16`, `q8_0`, … (see the README's weight-type rule). */
  type: string;
  /** Outermost first, as PyTorch lists it. */
  shape: number[];
}

/** Bytes per network. */
export interface ModelMemory {
  /** Bytes of the text encoder (0 while offloaded). */
  textEncoder: number;
  /** Bytes of the UNet (0 while offloaded). */
  unet: number;
  /** Bytes of the VAE (0 while offloaded). */
  vae: number;
}

/** ggml backend buffers: weights and compute buffers per network, their sum now and its peak. */
export interface DeviceMemory {
  /** The device's name (`CPU`, `Vulkan0`, …); in `MemoryUsage.device`, every device's joined by ` + `. */
  name: string;
  /** Weights per network. */
  weights: ModelMemory;
  /** Compute buffers per network. */
  compute: ModelMemory;
  /** All of the above now. */
  total: number;
  /** The largest `total` since load or the last reset. */
  peak: number;
}

/** `sd.memoryUsage()`: bytes now and peaks (since load or the last `resetPeak`). */
export interface MemoryUsage {
  /** The process's resident set (Linux /proc/self/status VmRSS, VmHWM; null elsewhere). */
  host: {
    /** Bytes resident now. */
    rss: number | null;
    /** The largest resident set since the process started or the peak was last reset. */
    peak: number | null;
    /** Whether this call reset the host peak (Linux only). */
    peakReset: boolean;
  };
  /** All of this model's backend buffers, on whatever devices its networks are placed. */
  device: DeviceMemory;
  /** The same per device the networks are placed on (one entry unless `devices` split them). */
  devices: DeviceMemory[];
  /** Whether the model was loaded with `offload`. */
  offload: boolean;
}

// ─── Conversion ──────────────────────────────────────────────────────────────────────────────

/** Options of `convertModel`. */
export interface ConvertOptions {
  /** Storage type for the weights (default f16); norms and biases stay f32 (README). */
  weightType?: WeightType;
  /** Overrides what the model files say (or what detection guesses for single files). */
  predictionType?: PredictionType;
  /** A separate VAE file to put in place of the model's own. */
  vae?: string;
}

/** What `convertModel` wrote. */
export interface ConvertResult {
  /** The configuration recorded in the GGUF's metadata. */
  info: Omit<ModelDetails, 'layout' | 'format' | 'path' | 'ignoredTensors' | 'unusedTensors'>;
  /** Tensors written. */
  tensors: number;
  /** Size of the GGUF file. */
  bytes: number;
}

// ─── Model files as containers ───────────────────────────────────────────────────────────────

/** One tensor of a model file, as stored. */
export interface ModelTensorInfo {
  /** As stored in the file, e.g. `model.diffusion_model.input_blocks.0.0.weight`. */
  name: string;
  /** ggml's type name: `f32`, `f16`, `bf16`, `q8_0`, `q4_0`, …; `i64`, `i32`, `f64` for non-weight tensors. */
  type: string;
  /** Outermost first, as PyTorch lists it. GGUF files do not record outer dimensions of 1, so they are absent. */
  shape: number[];
}

/** What `inspectModelFile` finds in a file. */
export interface ModelFileInfo {
  /** The container, by its contents. */
  format: ModelFileFormat;
  /** The file read. */
  path: string;
  /** safetensors `__metadata__`, GGUF key-values, or a checkpoint's top-level scalars (`global_step`, …), as text. */
  metadata: Record<string, string>;
  /** Every tensor in the file, in the file's order. */
  tensors: ModelTensorInfo[];
}

/** Storage types `writeGgufFile` can write. The quantized ones need rows (the innermost dimension) of whole 32-element blocks. */
export const GGUF_WRITE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q5_0', 'q5_1', 'q4_0', 'q4_1'] as const;
/** One of {@link GGUF_WRITE_TYPES}. */
export type GgufWriteType = (typeof GGUF_WRITE_TYPES)[number];

/** What `writeGgufFile` did beyond what it was asked. */
export interface GgufWriteResult {
  /** Tensors asked to be quantized whose rows are not whole 32-element blocks: written as f16. */
  keptF16: string[];
}

// ─── Prompts ─────────────────────────────────────────────────────────────────────────────────

/** How prompts longer than 75 tokens are handled (see `TokenizePromptOptions.mode`). */
export const PROMPT_MODES = ['chunks', 'truncate'] as const;
/** One of {@link PROMPT_MODES}. */
export type PromptMode = (typeof PROMPT_MODES)[number];

/** 77 ids (bos, up to 75 tokens, eos, padding) and the weight of each (1 for bos, eos and padding). */
export interface PromptChunk {
  /** 77 token ids. */
  ids: number[];
  /** One weight per id. */
  weights: number[];
}

/** A prompt as the text encoder takes it (`tokenizer.tokenizePrompt`). */
export interface TokenizedPrompt {
  /** One or more 77-token chunks. */
  chunks: PromptChunk[];
}

// ─── Random numbers ──────────────────────────────────────────────────────────────────────────

/**
 * Which of torch's float32 kernels to reproduce for draws of 16 or more values.
 * `avx2` (default): torch on x86-64 CPUs with AVX2 or AVX-512, i.e. what diffusers gives on a
 * PC or server CPU. `scalar`: torch without AVX2 (its "default" CPU capability, as on ARM);
 * it uses the C library's logf/sinf/cosf, so it matches torch where the C library is the same.
 * Draws of fewer than 16 values are the same for both.
 */
export const TORCH_KERNELS = ['avx2', 'scalar'] as const;
/** One of {@link TORCH_KERNELS}. */
export type TorchKernel = (typeof TORCH_KERNELS)[number];

/** A seed: an integer from 0 to 2^64 − 1, as a bigint or a safe-integer number. */
export type Seed = number | bigint;

// ─── Generation ──────────────────────────────────────────────────────────────────────────────

// ─── LoRA and embeddings ──────────────────────────────────────────────────────────────────────

/**
 * A LoRA (or LyCORIS LoHa / LoKr) for a call (`options.loras`) or for `sd.setLoras`: a file by
 * `path`, or by `name` (its file name without extension) in the `loraDirs` given at load, with its
 * strength. `weight` (default 1) applies to both networks, as A1111's `<lora:NAME:W>`;
 * `textEncoderWeight` and `unetWeight` override it per network (`<lora:NAME:TE:UNET>`).
 */
export interface LoraSpec {
  /** The LoRA file (.safetensors, .ckpt, .pt, .bin). Give `path` or `name`, not both. */
  path?: string;
  /** A file name without extension, looked up in `loraDirs` (subfolders included). */
  name?: string;
  /** Strength for both networks (default 1; 0 leaves the model as it is; negative values invert). */
  weight?: number;
  /** Strength for the text encoder (default `weight`). */
  textEncoderWeight?: number;
  /** Strength for the UNet (default `weight`). */
  unetWeight?: number;
}

/** A LoRA as a call applied it (`result.parameters.loras`, `sd.loras`). */
export interface AppliedLora {
  /** The name A1111 shows: the prompt tag's name, else the file name without extension. */
  name: string;
  /** The file. */
  path: string;
  /** Strength on the text encoder. */
  textEncoderWeight: number;
  /** Strength on the UNet. */
  unetWeight: number;
}

/**
 * A textual-inversion embedding as the prompt tokenizer takes it: the ids of its name (`tokens`)
 * become `count` ids from `firstId` (past the vocabulary), whose rows the text encoder is given.
 */
export interface EmbeddingTrigger {
  /** The ids of the embedding's name, without bos/eos. */
  tokens: number[];
  /** The first id its vectors get (49408 or more). */
  firstId: number;
  /** Its vectors. */
  count: number;
}

/** A textual-inversion embedding a call used (`result.parameters.embeddings`). */
export interface UsedEmbedding {
  /** The name that triggered it: its file name without extension. */
  name: string;
  /** The file. */
  path: string;
}

/** A LoRA file's request as the addon takes it (lib/ resolves names and weights first). */
export interface NativeLoraRequest {
  /** The file. */
  path: string;
  /** Strength on the text encoder. */
  textEncoderWeight: number;
  /** Strength on the UNet. */
  unetWeight: number;
}

/** What the engine found in a LoRA file, mapped onto a model (`sd.inspectLora`). */
export interface LoraFileReport {
  /** The file. */
  path: string;
  /** `kohya`, `peft`, `diffusers` (older attention-processor names), `loha`, `lokr`, or a mix such as `kohya+loha`. */
  format: string;
  /** Text-encoder weights it changes. */
  textEncoderLayers: number;
  /** UNet weights it changes. */
  unetLayers: number;
  /** Its keys that change nothing in this model (they are ignored; a warning lists them once). */
  unmatched: string[];
}

/** How the LoRAs now applied to a model are held (`sd.loraStatus()`). */
export interface LoraStatus {
  /** Weights changed in place (f32, f16 and bf16 weights; not under offload). */
  merged: number;
  /** Weights left as they are, their change added in the graph (quantized weights, or offload). */
  runtime: number;
  /** Host bytes holding the merged weights' original values, to restore them exactly. */
  backupBytes: number;
  /** Device bytes of the factors applied at run time. */
  adapterBytes: number;
  /** Parsed LoRA files kept for reuse. */
  cachedFiles: number;
}

/** The pipelines, as `GenerationParameters.pipeline` names them. */
export type PipelineName = 'txt2img' | 'img2img' | 'inpaint' | 'depth2img';

/** What the hires fix of a txt2img call was made with (`parameters.hires`). */
export interface HiresParameters {
  /** The first pass's width. */
  firstWidth: number;
  /** The first pass's height. */
  firstHeight: number;
  /** The scale asked for (absent when a target size was). */
  scale?: number;
  /** The target width asked for (A1111's hr_resize_x; 0 when only the height was given). */
  resizeWidth?: number;
  /** The target height asked for (A1111's hr_resize_y). */
  resizeHeight?: number;
  /** The upscaler in A1111's words: 'Latent', 'Latent (bicubic)', …, 'Lanczos', 'Nearest', or an ESRGAN file's name without its extension. */
  upscaler: string;
  /** The second pass's steps. */
  steps: number;
}

/** What a generation was made with (`result.parameters`; written to PNGs as A1111's infotext). */
export interface GenerationParameters {
  /** The pipeline that ran. */
  pipeline: PipelineName;
  /** The prompt. */
  prompt: string;
  /** The negative prompt ('' for none). */
  negativePrompt: string;
  /** Image width in pixels. */
  width: number;
  /** Image height in pixels. */
  height: number;
  /** The steps asked for (img2img-style pipelines run about strength · steps of them). */
  steps: number;
  /** Classifier-free guidance scale. */
  guidanceScale: number;
  /** The scheduler's canonical name. */
  scheduler: string;
  /** The generator's seed. */
  seed: Seed;
  /** Images per prompt. */
  batchSize: number;
  /** A1111's Clip skip, when given. */
  clipSkip: number | undefined;
  /** Whether A1111's attention syntax was read. */
  promptWeighting: boolean;
  /** img2img, inpaint and depth2img; with `hires`, the second pass's denoising strength. */
  strength?: number;
  /** txt2img with the hires fix (`width` and `height` above are then the final size). */
  hires?: HiresParameters;
  /** The LoRAs applied (from `options.loras`, `<lora:…>` tags in the prompt and `sd.loras`), when any. */
  loras?: AppliedLora[];
  /** The textual-inversion embeddings the prompts named (from `embeddingDirs`), when any. */
  embeddings?: UsedEmbedding[];
}
