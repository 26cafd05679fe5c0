// Progress of a generation (or an upscale, tile by tile) on stderr. A terminal gets one bar redrawn in place (stage, step i/n,
// s/it, ETA); a pipe or file gets one plain line per step, so logs stay readable; --json gets
// one JSON object per line; --quiet gets nothing.
import type { StepInfo } from '../pipelines/index.js';

export type ProgressMode = 'bar' | 'lines' | 'json' | 'quiet';
export type Stage = 'load' | 'encode' | 'sample' | 'decode' | 'upscale';

const BAR_WIDTH = 24;

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}` : `${m}:${String(s % 60).padStart(2, '0')}`;
}

export class Progress {
  readonly #mode: ProgressMode;
  readonly #write: (text: string) => void;
  #job = '';
  #jobFields: { job?: number; jobs?: number } = {};
  #stage: Stage | undefined;
  #drawn = false;
  #lastStepMs = 0;
  #firstStepMs = 0;

  constructor(mode: ProgressMode, write: (text: string) => void = (text) => process.stderr.write(text)) {
    this.#mode = mode;
    this.#write = write;
  }

  static modeFor(options: { quiet?: boolean | undefined; json?: boolean | undefined }, isTTY: boolean | undefined): ProgressMode {
    if (options.quiet) return 'quiet';
    if (options.json) return 'json';
    return isTTY ? 'bar' : 'lines';
  }

  /** Starts one generation of several (a grid cell): `[2/6]` in front of what follows. */
  job(index: number, count: number): void {
    this.#job = count > 1 ? `[${index + 1}/${count}] ` : '';
    this.#jobFields = count > 1 ? { job: index + 1, jobs: count } : {};
    this.#stage = undefined;
    this.#lastStepMs = 0;
  }

  stage(stage: Stage): void {
    if (stage === this.#stage) return;
    this.#stage = stage;
    if (this.#mode === 'json') this.#write(`${JSON.stringify({ event: 'stage', stage, ...this.#jobFields })}\n`);
    // Loading is not worth a line in a log: an error while loading is then the only line.
    else if (this.#mode === 'lines' && stage !== 'load') this.#write(`${this.#job}${stage}\n`);
    else if (this.#mode === 'bar') this.#draw(`${this.#job}${stage}…`);
  }

  /** onStep's report; the first one starts sampling, the last one starts decoding. */
  step(info: Omit<StepInfo, 'latents' | 'preview'>): void {
    if (this.#stage !== 'sample') {
      // The bar says "sample" itself; in a log the step lines do.
      this.#stage = 'sample';
      if (this.#mode === 'json') this.#write(`${JSON.stringify({ event: 'stage', stage: 'sample', ...this.#jobFields })}\n`);
      this.#firstStepMs = 0;
    }
    // s/it from the steps after the first: the first one also carries the prompt encoding.
    if (info.step === 1) this.#firstStepMs = info.elapsedMs;
    const perStep = info.step > 1 ? (info.elapsedMs - this.#firstStepMs) / (info.step - 1) / 1000 : (info.elapsedMs - this.#lastStepMs) / 1000;
    this.#lastStepMs = info.elapsedMs;
    const eta = perStep * (info.steps - info.step);
    if (this.#mode === 'json') {
      this.#write(`${JSON.stringify({ event: 'step', ...this.#jobFields, step: info.step, steps: info.steps, secondsPerStep: Number(perStep.toFixed(3)), etaSeconds: Math.round(eta) })}\n`);
    } else if (this.#mode === 'lines') {
      this.#write(`${this.#job}step ${info.step}/${info.steps}  ${perStep.toFixed(2)} s/it  ETA ${clock(eta)}\n`);
    } else if (this.#mode === 'bar') {
      const filled = Math.round((info.step / info.steps) * BAR_WIDTH);
      const bar = '█'.repeat(filled) + '░'.repeat(BAR_WIDTH - filled);
      this.#draw(`${this.#job}sample ${bar} ${info.step}/${info.steps}  ${perStep.toFixed(2)} s/it  ETA ${clock(eta)}`);
    }
    if (info.step === info.steps) this.stage('decode');
  }

  /** `sdnode upscale`'s report after each tile (UpscaleProgress). */
  tile(info: { tile: number; tiles: number; elapsedMs: number }): void {
    this.#stage = 'upscale';
    const perTile = info.elapsedMs / info.tile / 1000;
    const eta = perTile * (info.tiles - info.tile);
    if (this.#mode === 'json') {
      this.#write(`${JSON.stringify({ event: 'tile', tile: info.tile, tiles: info.tiles, secondsPerTile: Number(perTile.toFixed(3)), etaSeconds: Math.round(eta) })}\n`);
    } else if (this.#mode === 'lines') {
      this.#write(`tile ${info.tile}/${info.tiles}  ${perTile.toFixed(2)} s/tile  ETA ${clock(eta)}\n`);
    } else if (this.#mode === 'bar') {
      const filled = Math.round((info.tile / info.tiles) * BAR_WIDTH);
      const bar = '█'.repeat(filled) + '░'.repeat(BAR_WIDTH - filled);
      this.#draw(`upscale ${bar} ${info.tile}/${info.tiles}  ${perTile.toFixed(2)} s/tile  ETA ${clock(eta)}`);
    }
  }

  /** Clears the bar so that the next line starts clean. */
  done(): void {
    if (this.#drawn) this.#write('\r\x1b[K');
    this.#drawn = false;
  }

  #draw(text: string): void {
    this.#write(`\r\x1b[K${text}`);
    this.#drawn = true;
  }
}
