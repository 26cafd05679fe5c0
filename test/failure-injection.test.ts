// Failure injection (issue 21): the disk filling up while convertModel writes a GGUF, and memory
// running out for a compute buffer. Each runs in a child Node whose limits the test sets with
// prlimit(1) once the child has started (Node and tsx start under the usual limits):
// - RLIMIT_FSIZE makes write() fail part-way through the file (EFBIG; the child handles SIGXFSZ,
//   whose default action would kill it), the error path a full disk (ENOSPC) takes too, with no
//   mount and no root;
// - RLIMIT_AS caps the address space a little above what the child holds after loading the
//   model, so that a compute buffer for a huge shape cannot be allocated, while the tiny
//   model's own calls still fit.
// The child must end by itself: a signal (an abort in ggml, a SIGXFSZ kill) fails the test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';

import { packageRoot } from '../lib/native.js';
import { runChildScript } from './helpers/child-script.js';

const dir = mkdtempSync(join(tmpdir(), 'sdnode-failure-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const lib = (file: string): string => JSON.stringify(pathToFileURL(join(packageRoot, file)).href);
const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

// Sets the soft limit of one of the child's own resources through prlimit(1) (the hard limit stays,
// so the child may raise it again without privileges).
const setLimit = `
  import { spawnSync } from 'node:child_process';
  function setLimit(resource, bytes) {
    const r = spawnSync('prlimit', ['--pid', String(process.pid), '--' + resource + '=' + bytes + ':'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error('prlimit failed: ' + r.stderr);
  }`;

test('disk full while convertModel writes a GGUF: ERR_FILE_WRITE, the file already there untouched, no partial file left, the next write works', { skip: !hasPrlimit && 'no prlimit(1)' }, () => {
  const out = join(dir, 'converted');
  const script = `
    ${setLimit}
    import { createHash } from 'node:crypto';
    import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
    import { convertModel } from ${lib('lib/index.ts')};
    process.on('SIGXFSZ', () => {}); // write() then fails with EFBIG instead of the process dying
    const model = ${JSON.stringify(join(packageRoot, 'test', 'fixtures', 'tiny', 'sd1-diffusers'))};
    const out = ${JSON.stringify(out)};
    mkdirSync(out);
    const digest = () => createHash('sha256').update(readFileSync(out + '/model.gguf')).digest('hex');
    // A model already at the path (q8_0, so that it differs from the f32 conversions below).
    await convertModel(model, out + '/model.gguf', { weightType: 'q8_0' });
    const report = { existing: digest() };
    // The whole model in f32 is over 5 MB; 1 MB runs out in the middle of the tensor data, 100 bytes
    // in the header.
    for (const limit of [1_000_000, 100]) {
      setLimit('fsize', limit);
      try {
        await convertModel(model, out + '/model.gguf', { weightType: 'f32' });
        report[limit] = { converted: true };
      } catch (e) {
        report[limit] = { name: e.name, code: e.code, path: e.path, message: e.message, left: readdirSync(out), digest: digest() };
      }
    }
    setLimit('fsize', 'unlimited');
    const done = await convertModel(model, out + '/model.gguf', { weightType: 'f32' });
    report.after = { bytes: done.bytes, size: statSync(out + '/model.gguf').size, left: readdirSync(out), digest: digest() };
    console.log(JSON.stringify(report));`;
  const report = runChildScript<Record<string, unknown>>(script, 300_000);
  for (const limit of ['1000000', '100']) {
    const r = report[limit] as Record<string, unknown>;
    assert.equal(r.code, 'ERR_FILE_WRITE', `limit ${limit}: ${JSON.stringify(r)}`);
    assert.equal(r.name, 'StableDiffusionError');
    assert.equal(r.path, join(out, 'model.gguf'));
    assert.match(r.message as string, /^Cannot write .*model\.gguf: File too large$/);
    assert.deepEqual(r.left, ['model.gguf'], `limit ${limit}: files left behind`);
    assert.equal(r.digest, report.existing, `limit ${limit}: the model already at the path was changed`);
  }
  const done = report.after as { bytes: number; size: number; left: string[]; digest: string };
  assert.deepEqual(done.left, ['model.gguf']);
  assert.notEqual(done.digest, report.existing);
  assert.ok(done.size > 5_000_000, `the full file has ${done.size} bytes`);
});

test('out of memory for a compute buffer: ERR_OUT_OF_MEMORY, and the model still equals diffusers after', { skip: !hasPrlimit && 'no prlimit(1)' }, (t) => {
  const script = `
    ${setLimit}
    import { readFileSync } from 'node:fs';
    import { StableDiffusion, Tensor } from ${lib('lib/index.ts')};
    import { pipelineCaseOptions, pipelineGoldens, relativeError } from ${lib('test/helpers/goldens.ts')};
    const goldens = pipelineGoldens();
    const c = goldens.cases.find((c) => c.fixture === 'sd1-diffusers' && c.batchSize === 1 && !c.injected);
    const sd = await StableDiffusion.load({ model: ${JSON.stringify(join(packageRoot, 'test', 'fixtures', 'tiny', 'sd1-diffusers'))}, backend: 'cpu', weightType: 'f32', threads: 1 });
    const golden = async () => relativeError((await sd.txt2img(pipelineCaseOptions(goldens, c))).latents, goldens.tensor(c.latents));
    const report = { case: c.name, before: await golden() };
    // Room for the tiny model's own calls, not for a UNet on 4096² images.
    const vm = Number(/VmSize:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    setLimit('as', vm + 384 * 2 ** 20);
    const failures = [];
    const huge = [
      () => sd.unet.predict(new Tensor([1, 4, 512, 512]), 500, new Tensor([1, 77, sd.unet.contextDim])),
      () => sd.txt2img({ prompt: 'a cat', width: 4096, height: 4096, steps: 1, seed: 1 }),
      () => sd.vae.decode(new Tensor([1, 4, 512, 512])),
    ];
    for (const call of huge) {
      try { await call(); failures.push('worked'); } catch (e) { failures.push({ name: e.name, code: e.code, message: e.message }); }
    }
    report.failures = failures;
    report.after = await golden();
    report.again = await golden();
    await sd.dispose();
    console.log(JSON.stringify(report));`;
  const report = runChildScript<Record<string, unknown>>(script, 300_000);
  const failures = report.failures as { name: string; code: string; message: string }[];
  t.diagnostic(`${report.case}: ${failures.map((f) => (typeof f === 'string' ? f : f.message)).join('; ')}; relative error before ${report.before}, after ${report.after}`);
  assert.equal(failures.length, 3);
  for (const f of failures) {
    assert.equal(f.code, 'ERR_OUT_OF_MEMORY', JSON.stringify(f));
    assert.equal(f.name, 'StableDiffusionError');
  }
  // The golden case before, after and once more: within the f32 bound, each time.
  for (const when of ['before', 'after', 'again']) assert.ok((report[when] as number) <= 1e-3, `${report.case} ${when}: relative error ${report[when]}`);
});
