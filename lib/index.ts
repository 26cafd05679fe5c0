export { Tensor } from './tensor.js';
export type { TensorLike } from './tensor.js';
export { StableDiffusion, BACKENDS, WEIGHT_TYPES, PREDICTION_TYPES } from './stable-diffusion.js';
export type { Backend, WeightType, PredictionType, LoadOptions, ModelInfo } from './stable-diffusion.js';
export { systemInfo, listDevices } from './system.js';
export type { SystemInfo, DeviceInfo, DeviceType } from './system.js';
export { StableDiffusionError } from './errors.js';
export type { ErrorCode } from './errors.js';
