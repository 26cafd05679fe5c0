// The golden tests on a CUDA device (test/helpers/device-goldens.ts), all txt2img cases
// included. Skipped, saying why, when the addon was built without CUDA
// (`node scripts/build-native.mjs --cuda`) or no CUDA device is present; set
// SDNODE_REQUIRE_CUDA=1 on a GPU machine so that a broken driver setup fails instead.
// Backend selection and its errors, CUDA among them, are tested in test/vulkan.test.ts.
import { describeDeviceGoldens } from './helpers/device-goldens.js';

describeDeviceGoldens({
  backend: 'CUDA',
  buildFlag: '--cuda',
  noDeviceHint: 'no NVIDIA driver or GPU visible to this process',
  requireEnv: 'SDNODE_REQUIRE_CUDA',
});
