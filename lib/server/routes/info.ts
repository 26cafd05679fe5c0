// POST /sdapi/v1/png-info, GET /sdapi/v1/memory, and GET /sdnode/v1/info (ours: what the web
// page needs to know about the server and its model).
import { totalmem } from 'node:os';

import type { FastifyInstance as App } from 'fastify';
import sharp from 'sharp';
import { Type } from 'typebox';

import { parseParameters, readExifUserComment, readPngText, isPng } from '../../png-parameters.js';
import { listDevices } from '../../system.js';
import { decodeImage } from '../generation/images.js';
import { SAMPLERS, SCHEDULE_TYPES } from '../generation/samplers.js';
import { LIMITS } from '../schemas/generate.js';
import type { ServerState } from '../state.js';

const PngInfoBody = Type.Object({ image: Type.String() }, { additionalProperties: true });

/** A1111's parse of an infotext: Prompt, Negative prompt, each field as written, Size-1/Size-2. */
function parsedFields(text: string): Record<string, string> {
  const parsed = parseParameters(text);
  const out: Record<string, string> = { Prompt: parsed.prompt, 'Negative prompt': parsed.negativePrompt };
  for (const [key, value] of Object.entries(parsed.fields)) {
    const size = key === 'Size' || key.endsWith(' size') ? /^(\d+)x(\d+)$/.exec(value) : null;
    if (size) {
      out[`${key}-1`] = size[1]!;
      out[`${key}-2`] = size[2]!;
    } else {
      out[key] = value;
    }
  }
  return out;
}

export function infoRoutes(app: App, state: ServerState): void {
  app.post('/sdapi/v1/png-info', { schema: { body: PngInfoBody } }, async (request) => {
    const { image } = request.body as { image: string };
    if (image.trim() === '') return { info: '', items: {}, parameters: {} };
    const { data } = await decodeImage(image.trim(), ['image']);
    let items: Record<string, string> = {};
    let info: string | undefined;
    if (isPng(data)) {
      items = readPngText(data);
      info = items.parameters;
      delete items.parameters;
    } else {
      const { exif } = await sharp(data).metadata();
      info = exif === undefined ? undefined : readExifUserComment(exif);
    }
    let parameters: Record<string, string> = {};
    try {
      if (info) parameters = parsedFields(info);
    } catch {
      // Text that is not an infotext is still returned as info.
    }
    return { info: info ?? '', items, parameters };
  });

  app.get('/sdapi/v1/memory', async () => {
    const rss = process.memoryUsage().rss;
    const total = totalmem();
    const current = state.models.current;
    let cuda: Record<string, unknown> = { error: 'unavailable' };
    const device = current?.sd.device;
    if (device && device.backend !== 'CPU') {
      const info = listDevices().find((d) => d.name === device.name);
      const usage = current!.sd.memoryUsage();
      if (info) {
        cuda = {
          system: { free: info.memoryFree, used: info.memoryTotal - info.memoryFree, total: info.memoryTotal },
          allocated: { current: usage.device.total, peak: usage.device.peak },
        };
      }
    }
    return { ram: { free: total - rss, used: rss, total }, cuda };
  });

  app.get('/sdnode/v1/info', async () => {
    const current = state.models.current;
    const { waiting, capacity, active, finished } = await state.queue.state();
    return {
      model: current && {
        title: current.checkpoint.title,
        family: current.sd.info.family,
        variant: current.sd.info.variant,
        imageSize: current.sd.info.imageSize,
        predictionType: current.sd.info.predictionType,
        device: current.sd.device.name,
      },
      samplers: SAMPLERS.map((s) => s.name),
      schedulers: SCHEDULE_TYPES.map((s) => s.label),
      limits: LIMITS,
      queue: { waiting, capacity, ...(active !== undefined && { active }), ...finished },
    };
  });
}
