// The cheap preview: SD 1.x/2.x latents → RGB by one fixed linear map per pixel, at latent
// resolution (an eighth of the image). The coefficients are the widely used least-squares fit of
// SD's VAE decoder output to its latents ("approx cheap" in A1111): good enough to watch a
// generation take shape, no network call.
import { Tensor } from './tensor.js';
import { ArgumentRangeError } from './errors.js';

// rows: latent channel; columns: R, G, B.
const LATENT_RGB = [
  [0.298, 0.207, 0.208],
  [0.187, 0.286, 0.173],
  [-0.158, 0.189, 0.264],
  [-0.184, -0.271, -0.473],
] as const;

/** latents [B, 4, h, w] (scaled, as the sampler holds them) → [B, 3, h, w] in [0, 1]. */
export function latentPreview(latents: Tensor): Tensor {
  const [batch, channels, h, w] = latents.shape as [number, number, number, number];
  if (channels !== LATENT_RGB.length) {
    throw new ArgumentRangeError(`Expected latents with ${LATENT_RGB.length} channels but received ${channels}`);
  }
  const plane = h * w;
  const out = new Float32Array(batch * 3 * plane);
  for (let n = 0; n < batch; n++) {
    for (let i = 0; i < plane; i++) {
      for (let rgb = 0; rgb < 3; rgb++) {
        let v = 0;
        for (let c = 0; c < channels; c++) v += LATENT_RGB[c]![rgb]! * latents.data[(n * channels + c) * plane + i]!;
        // The fit maps to roughly [-1, 1], like the decoder.
        const unit = (v + 1) / 2;
        out[(n * 3 + rgb) * plane + i] = unit < 0 ? 0 : unit > 1 ? 1 : unit;
      }
    }
  }
  return new Tensor([batch, 3, h, w], out);
}
