// The page of `sdnode serve`: a form over the server's own A1111 API (same origin, so the
// browser's Basic credentials go along), progress with previews while a job runs, and a gallery
// of results with their parameters. Plain JavaScript, no build step.

const $ = (id) => document.getElementById(id);
const form = $('form');
let mode = 'txt2img';
let running = false;

// --- API ------------------------------------------------------------------------------------

async function api(path, body) {
  // Relative to the page, so that the page works where an app mounts the plugin under a prefix.
  const response = await fetch(`.${path}`, body === undefined ? {} : {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) throw new Error(errorText(response.status, data));
  return data;
}

function errorText(status, data) {
  const detail = data && data.detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join('\n');
  if (typeof detail === 'string') return detail;
  return `The server answered ${status}`;
}

function showError(message) {
  const error = $('error');
  error.textContent = message || '';
  error.hidden = !message;
}

// --- Start: the lists and defaults the server has ---------------------------------------------

function fill(select, items, selected) {
  select.replaceChildren(...items.map(({ value, label }) => {
    const option = document.createElement('option');
    option.value = value;
    option.textContent = label;
    option.selected = value === selected;
    return option;
  }));
}

async function loadModels() {
  const [models, options] = await Promise.all([api('/sdapi/v1/sd-models'), api('/sdapi/v1/options')]);
  fill($('model'), models.map((m) => ({ value: m.title, label: m.model_name })), options.sd_model_checkpoint);
}

// The LoRAs of --lora-dir: picking one adds its <lora:NAME:1> tag to the prompt.
function fillLoras(loras) {
  fill($('lora'), [{ value: '', label: `${loras.length} LoRA${loras.length === 1 ? '' : 's'}…` }, ...loras.map((l) => ({
    value: l.name, label: l.alias && l.alias !== l.name ? `${l.name} (${l.alias})` : l.name,
  }))], '');
  $('lora-field').hidden = loras.length === 0;
}

$('lora').addEventListener('change', (event) => {
  const name = event.target.value;
  if (!name) return;
  const prompt = $('prompt');
  prompt.value = `${prompt.value.trimEnd()}${prompt.value.trim() ? ' ' : ''}<lora:${name}:1>`;
  event.target.value = '';
  prompt.focus();
});

async function start() {
  try {
    const [info, samplers, schedulers, loras] = await Promise.all([
      api('/sdnode/v1/info'), api('/sdapi/v1/samplers'), api('/sdapi/v1/schedulers'), api('/sdapi/v1/loras'),
    ]);
    fillLoras(loras);
    fill($('sampler'), samplers.map((s) => ({ value: s.name, label: s.name })), 'Euler a');
    fill($('scheduler'), schedulers.map((s) => ({ value: s.label, label: s.label })), 'Automatic');
    if (info.model) {
      $('width').value = info.model.imageSize;
      $('height').value = info.model.imageSize;
    }
    await loadModels();
    document.body.dataset.ready = 'true';
  } catch (error) {
    showError(`Cannot reach the server: ${error.message}`);
  }
}

$('model').addEventListener('change', async (event) => {
  const select = event.target;
  select.disabled = true;
  $('status').textContent = 'Loading model…';
  try {
    await api('/sdapi/v1/options', { sd_model_checkpoint: select.value });
    const info = await api('/sdnode/v1/info');
    $('width').value = $('height').value = info.model.imageSize;
    await loadModels();
    $('status').textContent = '';
  } catch (error) {
    showError(error.message);
  } finally {
    select.disabled = false;
  }
});

// --- Modes and the input image ---------------------------------------------------------------

const imageCanvas = $('image-canvas');
const maskCanvas = $('mask-canvas');
// The mask sent to the server: white where to repaint, on black, at the image's own size.
const maskData = document.createElement('canvas');
let initImage = null;

function setMode(next) {
  mode = next;
  for (const tab of document.querySelectorAll('[role="tab"]')) tab.setAttribute('aria-selected', String(tab.dataset.mode === mode));
  $('image-fields').hidden = mode === 'txt2img';
  $('mask-tools').hidden = mode !== 'inpaint' || !initImage;
  maskCanvas.hidden = mode !== 'inpaint';
}

for (const tab of document.querySelectorAll('[role="tab"]')) tab.addEventListener('click', () => setMode(tab.dataset.mode));

$('init-file').addEventListener('change', () => {
  const file = $('init-file').files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const image = new Image();
    image.onload = () => {
      initImage = { dataUrl: reader.result, width: image.naturalWidth, height: image.naturalHeight };
      for (const canvas of [imageCanvas, maskCanvas, maskData]) {
        canvas.width = image.naturalWidth;
        canvas.height = image.naturalHeight;
      }
      imageCanvas.getContext('2d').drawImage(image, 0, 0);
      clearMask();
      $('canvas-box').hidden = false;
      $('width').value = image.naturalWidth - (image.naturalWidth % 8);
      $('height').value = image.naturalHeight - (image.naturalHeight % 8);
      setMode(mode);
    };
    image.src = reader.result;
  };
  reader.readAsDataURL(file);
});

function clearMask() {
  maskCanvas.getContext('2d').clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  const context = maskData.getContext('2d');
  context.fillStyle = '#000';
  context.fillRect(0, 0, maskData.width, maskData.height);
  maskData.dataset.painted = '';
}

$('clear-mask').addEventListener('click', clearMask);

let last = null;
function point(event) {
  const box = maskCanvas.getBoundingClientRect();
  return { x: ((event.clientX - box.left) / box.width) * maskCanvas.width, y: ((event.clientY - box.top) / box.height) * maskCanvas.height };
}

function stroke(from, to) {
  const scale = maskCanvas.width / maskCanvas.getBoundingClientRect().width;
  const size = Number($('brush').value) * scale;
  for (const [canvas, colour] of [[maskCanvas, '#ff3030'], [maskData, '#fff']]) {
    const context = canvas.getContext('2d');
    context.strokeStyle = colour;
    context.lineWidth = size;
    context.lineCap = context.lineJoin = 'round';
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
  }
  maskData.dataset.painted = 'true';
}

maskCanvas.addEventListener('pointerdown', (event) => {
  maskCanvas.setPointerCapture(event.pointerId);
  last = point(event);
  stroke(last, last);
});
maskCanvas.addEventListener('pointermove', (event) => {
  if (last === null) return;
  const next = point(event);
  stroke(last, next);
  last = next;
});
for (const end of ['pointerup', 'pointercancel']) maskCanvas.addEventListener(end, () => (last = null));

// --- Generating ------------------------------------------------------------------------------

function number(id) {
  const text = $(id).value.trim();
  return text === '' ? undefined : Number(text);
}

function request() {
  const body = {
    prompt: $('prompt').value,
    negative_prompt: $('negative').value,
    sampler_name: $('sampler').value,
    scheduler: $('scheduler').value,
    steps: number('steps'),
    cfg_scale: number('cfg'),
    width: number('width'),
    height: number('height'),
    seed: number('seed'),
    batch_size: number('batch'),
    n_iter: number('count'),
  };
  if (mode === 'txt2img') return { path: '/sdapi/v1/txt2img', body };
  if (!initImage) throw new Error('Choose an input image first');
  body.init_images = [initImage.dataUrl];
  body.denoising_strength = number('strength');
  if (mode === 'inpaint') {
    if (!maskData.dataset.painted) throw new Error('Draw the area to repaint on the image first');
    body.mask = maskData.toDataURL('image/png');
    body.mask_blur = number('mask-blur');
    body.inpainting_mask_invert = $('invert').checked ? 1 : 0;
  }
  return { path: '/sdapi/v1/img2img', body };
}

function setRunning(value) {
  running = value;
  $('generate').disabled = value;
  $('interrupt').disabled = !value;
  $('skip').disabled = !value;
}

async function pollProgress() {
  while (running) {
    try {
      const p = await api('/sdapi/v1/progress');
      if (!running) break;
      const s = p.state;
      $('progress').value = p.progress;
      if (s.job_count > 0) {
        const eta = p.eta_relative > 0 ? `, ${Math.ceil(p.eta_relative)} s left` : '';
        $('progress-text').textContent = `image ${Math.min(s.job_no + 1, s.job_count)}/${s.job_count}, step ${s.sampling_step}/${s.sampling_steps}${eta}`;
      } else if (p.queue && p.queue.waiting > 0) {
        $('progress-text').textContent = `waiting: ${p.queue.waiting} in the queue`;
      }
      if (p.current_image) {
        $('preview').src = `data:image/png;base64,${p.current_image}`;
        $('preview').hidden = false;
      }
    } catch {
      // a missed poll is not worth a message
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function base64Blob(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: 'image/png' });
}

function addResult(base64, infotext, seed) {
  const figure = document.createElement('figure');
  figure.className = 'result';
  const url = URL.createObjectURL(base64Blob(base64));
  const image = document.createElement('img');
  image.src = url;
  image.alt = infotext.split('\n')[0];
  const caption = document.createElement('figcaption');
  const text = document.createElement('pre');
  text.className = 'infotext';
  text.textContent = infotext;
  const links = document.createElement('div');
  links.className = 'links';
  const download = document.createElement('a');
  download.className = 'download';
  download.href = url;
  download.download = `sdnode-${seed}.png`;
  download.textContent = 'Download';
  const reuse = document.createElement('button');
  reuse.type = 'button';
  reuse.textContent = 'Use seed';
  reuse.addEventListener('click', () => ($('seed').value = seed));
  links.append(download, reuse);
  caption.append(text, links);
  figure.append(image, caption);
  $('gallery').prepend(figure);
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (running) return;
  showError('');
  let call;
  try {
    call = request();
  } catch (error) {
    showError(error.message);
    return;
  }
  setRunning(true);
  $('progress').value = 0;
  $('progress-text').textContent = 'queued…';
  const polling = pollProgress();
  try {
    const result = await api(call.path, call.body);
    const info = JSON.parse(result.info);
    result.images.forEach((image, i) => addResult(image, info.infotexts[i], (/Seed: (\d+)/.exec(info.infotexts[i]) || [])[1] ?? info.all_seeds[i]));
    $('progress').value = 1;
    $('progress-text').textContent = info.interrupted ? 'interrupted' : `done: ${result.images.length} image${result.images.length === 1 ? '' : 's'}`;
  } catch (error) {
    showError(error.message);
    $('progress-text').textContent = '';
  } finally {
    setRunning(false);
    await polling;
  }
});

$('interrupt').addEventListener('click', () => api('/sdapi/v1/interrupt', {}).catch((error) => showError(error.message)));
$('skip').addEventListener('click', () => api('/sdapi/v1/skip', {}).catch((error) => showError(error.message)));

setMode('txt2img');
start();
