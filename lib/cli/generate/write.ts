// `sdnode generate`, step 4 of 4: the images encoded (one file each, or one labelled grid) with
// their A1111 parameters, written all or none, and what was written reported on stdout.
import { writeFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';

import sharp from 'sharp';

import { StableDiffusionError } from '../../errors.js';
import { encodeImage, toRgbBytes, type ImageFormat } from '../../image.js';
import { formatParameters, setPngText, type InfotextParameters } from '../../png-parameters.js';
import { renderGrid, type GridLayout } from '../grid.js';
import { axisValue } from './plan.js';
import type { Axis, GenerateRequest, JobPlan, JobResult } from './types.js';

/** A file to write, and what the report says about it. */
export interface OutputFile {
  path: string;
  data: Buffer;
  width: number;
  height: number;
  parameters: InfotextParameters;
}

/** A grid's labels and layout. */
export interface Grid {
  layout: GridLayout;
  columns: string[];
  rows: string[];
}

/** The files the results make: a grid's contact sheet, or each image of the batch (or the one `--from` names). */
export async function encodeOutputs(
  request: GenerateRequest, plan: JobPlan, results: JobResult[],
): Promise<{ files: OutputFile[]; grid: Grid | undefined }> {
  const { output, format, quality, keep } = request;
  const { axes, jobs } = plan;
  const files: OutputFile[] = [];
  let grid: Grid | undefined;
  if (request.isGrid) {
    const [x, ...ys] = axes as [Axis, ...Axis[]];
    const columns = x.values.map((value) => `${x.label}: ${axisValue(x, value)}`);
    const rowCount = jobs.length / columns.length;
    const rows = Array.from({ length: rowCount }, (_, r) => {
      const job = jobs[r * columns.length]!;
      return ys.map((axis) => `${axis.label}: ${axisValue(axis, job[axis.key])}`).join(', ');
    });
    const cells = Array.from({ length: rowCount }, (_, r) =>
      Array.from({ length: columns.length }, (_, c) => toRgbBytes(results[r * columns.length + c]!.images, 0)),
    );
    const rendered = await renderGrid(cells, columns, rows);
    grid = { layout: rendered.layout, columns, rows };
    // The grid carries its first cell's parameters, as A1111's grids do.
    const first = results[0]!.parameters[0]!;
    const data = format === 'png' ? encodeGridPng(rendered.png, first) : await encodeOther(rendered.png, format, quality, first);
    files.push({ path: output, data, width: rendered.layout.width, height: rendered.layout.height, parameters: first });
  } else {
    const { images, parameters } = results[0]!;
    const indices = keep !== undefined ? [keep] : parameters.map((_, i) => i);
    for (const [n, i] of indices.entries()) {
      const data = await encodeImage(images, i, { format, ...(quality !== undefined && { quality }), parameters: parameters[i]! });
      files.push({ path: numbered(output, n, indices.length), data, width: images.shape[3]!, height: images.shape[2]!, parameters: parameters[i]! });
    }
  }
  return { files, grid };
}

/** What was written, on stdout: a line per file, or with --json one object. */
export function report(request: GenerateRequest, plan: JobPlan, files: OutputFile[], grid: Grid | undefined, seconds: number): void {
  if (request.json) {
    console.log(JSON.stringify({
      pipeline: request.pipeline,
      outputs: files.map((f) => ({ path: f.path, width: f.width, height: f.height, seed: String(f.parameters.seed), parameters: formatParameters(f.parameters) })),
      ...(grid && { grid: { columns: grid.columns, rows: grid.rows, ...grid.layout } }),
      seconds: Number(seconds.toFixed(2)),
    }, null, 2));
  } else {
    for (const f of files) console.log(`wrote ${f.path} (${f.width}×${f.height}${grid ? `, ${plan.jobs.length} images` : `, seed ${f.parameters.seed}`})`);
  }
}

function numbered(path: string, index: number, count: number): string {
  if (count === 1) return path;
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}-${index + 1}${ext}`);
}

/** Writes every file or none: each goes to a temporary name first and is renamed when all are written. */
export async function writeAll(files: { path: string; data: Buffer }[]): Promise<void> {
  const temps: string[] = [];
  try {
    for (const f of files) {
      const temp = join(dirname(f.path), `.${basename(f.path)}.${process.pid}.tmp`);
      await writeFile(temp, f.data).catch((error: Error) => {
        throw new StableDiffusionError('ERR_FILE_WRITE', `Cannot write ${f.path}: ${error.message.replace(/, open .*$/, '')}`, { path: f.path, cause: error });
      });
      temps.push(temp);
    }
    for (let i = 0; i < files.length; i++) await rename(temps[i]!, files[i]!.path);
  } catch (error) {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    throw error;
  }
}

function encodeGridPng(png: Buffer, parameters: InfotextParameters): Buffer {
  return setPngText(png, 'parameters', formatParameters(parameters));
}

async function encodeOther(png: Buffer, format: ImageFormat, quality: number | undefined, parameters: InfotextParameters): Promise<Buffer> {
  const image = sharp(png);
  const encoded = format === 'jpeg' ? image.jpeg({ quality: quality ?? 90 }) : image.webp({ quality: quality ?? 90 });
  const text = formatParameters(parameters);
  if (/^[\x00-\x7f]*$/.test(text)) encoded.withExif({ IFD2: { UserComment: text } });
  return encoded.toBuffer();
}
