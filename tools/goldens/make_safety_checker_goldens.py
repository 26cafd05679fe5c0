#!/usr/bin/env python3
"""Safety checker goldens: diffusers' StableDiffusionSafetyChecker on a tiny random CLIP vision tower.

References (imported, never copied): diffusers' StableDiffusionSafetyChecker (its CLIPConfig from
transformers: vision tower 32 wide, 2 layers, 4 heads, 224 px in 14 px patches as ViT-L/14's,
projection 16, SD's 17 concepts and 3 special-care concepts) and transformers'
CLIPImageProcessor (the PIL backend: shortest edge to 224 bicubic, centre crop 224, 1/255,
CLIP's mean and std). Weights: transformers' initialisation from a fixed seed, then every bias,
norm and embedding redrawn so that none is trivial.

The thresholds (concept_embeds_weights, special_care_embeds_weights) are chosen by this script
from the cosines of the images below so that both the test images and the txt2img batch land on
both sides:
  two concepts        each flags part of one group (the test images, the txt2img batch) and none of
                      the other: a midpoint between two images' cosines, widest gap first
  special concept 0   fires for some images (the same rule over all images)
  one more concept    sits 0.003 to 0.007 above the cosine of one image whose special concept fired
                      and that nothing else flags, so that only diffusers' 0.01 adjustment flags it
  the others          1.5: never (a cosine is at most 1)
The first choice whose unrounded scores (those above −0.1) all lie at least MARGIN (1.5e-3) from 0
is taken, so that a faithful implementation within 1e-4 gets the same flags; its rounded scores
may still differ by one step of 0.001 where a score lies within 1e-4 of a rounding boundary.

Fixtures (the layouts users have):
  test/fixtures/tiny/safety-checker/safety_checker/   config.json + model.safetensors with
      transformers 4's names ("vision_model.vision_model.…"), as SD 1.x folders ship them
  test/fixtures/tiny/safety-checker/feature_extractor/preprocessor_config.json
  test/fixtures/tiny/safety-checker-bin/              config.json + pytorch_model.bin with
      transformers 5's names ("vision_model.…"), the same weights
Goldens (test/fixtures/goldens/safety-checker/):
  source-N.png      the test images (smooth patterns with a little seeded noise; sizes 64², 96×80,
                    300×260, 224²)
  clip-N.png        CLIPImageProcessor's resized and cropped image before rescaling (uint8), so
                    that the test checks our resizing to the byte and rebuilds pixel_values
  goldens.json      per image: image_embeds, the cosines, diffusers' rounded scores and
                    has_nsfw_concept; and a txt2img case: StableDiffusionPipeline on
                    test/fixtures/tiny/sd1-diffusers with this checker and feature extractor,
                    4 images per prompt, 96², 3 PNDM steps, seed 42: has_nsfw_concept and the cosines

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python tools/goldens/make_safety_checker_goldens.py
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pipeline_goldens as pipelines  # noqa: E402 (the tiny pipeline and load_module)

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(REPO_ROOT, "test", "fixtures", "tiny")
FOLDER = os.path.join(TINY, "safety-checker")
BIN_FOLDER = os.path.join(TINY, "safety-checker-bin")
OUT_DIR = os.path.join(REPO_ROOT, "test", "fixtures", "goldens", "safety-checker")

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=224,
              patch_size=14)
PROJECTION = 16
IMAGE_SIZES = [(64, 64), (96, 80), (300, 260), (224, 224)]  # (width, height)
MARGIN = 1.5e-3

PROMPT = "a painting of a flooble"
NEGATIVE = "blurry"
SIZE = 96
STEPS = 3
GUIDANCE = 7.5
SEED = 42
BATCH = 4


def make_checker():
    from transformers import CLIPConfig
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    config = CLIPConfig(text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
                        vision_config=VISION, projection_dim=PROJECTION)
    torch.manual_seed(1234)
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        for name, p in checker.named_parameters():
            if name.endswith(".bias"):
                p.uniform_(-0.1, 0.1)
            elif "layer_norm" in name or "layrnorm" in name:
                p.uniform_(0.7, 1.3)
            elif "embedding" in name or name.endswith("embeds"):
                p.normal_(0.0, 0.5)
    return checker


def test_image(index, width, height):
    """A smooth colour pattern with a little seeded noise (PNG keeps it small)."""
    rng = np.random.RandomState(100 + index)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    freq = rng.uniform(1.0, 4.0, size=(3, 2))
    channels = [0.5 + 0.4 * np.sin(2 * np.pi * (freq[c, 0] * x / width + freq[c, 1] * y / height) + phase[c]) for c in range(3)]
    image = np.stack(channels, axis=-1) * 255 + rng.normal(0, 6, size=(height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def clip_resized(processor, image):
    """CLIPImageProcessor's resize and centre crop alone (uint8, HWC)."""
    out = processor(Image.fromarray(image), do_rescale=False, do_normalize=False, return_tensors="np").pixel_values[0]
    assert out.dtype == np.uint8 or np.all(out == np.rint(out)), "resize should stay on uint8 values"
    return np.transpose(out, (1, 2, 0)).astype(np.uint8)


def cosines(checker, pixel_values):
    from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance
    with torch.no_grad():
        embeds = checker.visual_projection(checker.vision_model(pixel_values)[1])
        return (embeds, cosine_distance(embeds, checker.concept_embeds).numpy(),
                cosine_distance(embeds, checker.special_care_embeds).numpy())


def gap_midpoints(values):
    """(midpoint, half gap) between sorted values, widest gap first."""
    v = np.sort(values)
    gaps = np.diff(v)
    return [(float((v[i] + v[i + 1]) / 2), float(gaps[i] / 2)) for i in np.argsort(-gaps)]


def split(scores, group, others, taken):
    """A concept (not in `taken`) and a threshold that flag part of `group` and none of `others`,
    MARGIN from every image's score (cosine plus the adjustment it gets)."""
    for k in range(scores.shape[1]):
        if k in taken:
            continue
        for t, half in gap_midpoints(scores[group, k]):
            if half > MARGIN and np.all(scores[others, k] < t - MARGIN):
                return k, t
    return None


def flags_with_margins(concept_cos, special_cos, concept, special):
    """Each image's flag, or None unless every unrounded score that can matter lies MARGIN from 0.
    (diffusers computes the real flags; this only steers the choice.)"""
    flags = []
    for i in range(concept_cos.shape[0]):
        flags.append(False)
        adjustment = np.float32(0.0)
        for cos, weights, is_special in ((special_cos[i], special, True), (concept_cos[i], concept, False)):
            for k in range(len(cos)):
                raw = np.float32(cos[k]) - np.float32(weights[k]) + adjustment
                if raw > -0.1:  # the 1.5 thresholds are far from anything
                    if abs(raw) <= MARGIN:
                        return None
                if is_special and round(raw, 3) > 0:
                    adjustment = np.float32(0.01)
                if not is_special and round(raw, 3) > 0:
                    flags[-1] = True
    return flags


def choose_thresholds(checker, concept_cos, special_cos, groups):
    """Thresholds by the module docstring's rules; the first choice that meets the margins."""
    for special_threshold, half in gap_midpoints(special_cos[:, 0]):
        if half <= MARGIN:
            continue
        special = np.full(special_cos.shape[1], 1.5, dtype=np.float32)
        concept = np.full(concept_cos.shape[1], 1.5, dtype=np.float32)
        special[0] = special_threshold
        fired = special_cos[:, 0] > special[0]
        adjusted_cos = concept_cos + 0.01 * fired[:, None]
        taken = []
        for group, others in ((groups[0], groups[1]), (groups[1], groups[0])):
            found = split(adjusted_cos, group, others, taken)
            if found is None:
                break
            taken.append(found[0])
            concept[found[0]] = found[1]
        if len(taken) < 2:
            continue
        flagged = np.any(adjusted_cos[:, taken] > concept[taken], axis=1)
        # An image whose special concept fired and that nothing else flags, and a concept whose
        # threshold sits just above its cosine: only the adjustment lifts it over the threshold.
        candidates = [i for i in range(len(fired)) if fired[i] and not flagged[i]]
        for adjusted in (k for k in range(concept_cos.shape[1]) if k not in taken):
            for pick in sorted(candidates, key=lambda i: -concept_cos[i, adjusted]):
                for offset in np.arange(0.0030, 0.0071, 0.0005):
                    concept[adjusted] = concept_cos[pick, adjusted] + offset
                    flags = flags_with_margins(concept_cos, special_cos, concept, special)
                    if flags is not None and all(len(set(np.asarray(flags)[g])) == 2 for g in groups):
                        with torch.no_grad():
                            checker.special_care_embeds_weights.copy_(torch.from_numpy(special))
                            checker.concept_embeds_weights.copy_(torch.from_numpy(concept))
                        return pick, taken, adjusted
                concept[adjusted] = 1.5
    raise AssertionError("no thresholds meet the margins")


def result_entry(embeds, concept_cos, special_cos, result, flags, i):
    return {"imageEmbeds": embeds[i].tolist(), "conceptCosine": concept_cos[i].tolist(),
            "specialCosine": special_cos[i].tolist(),
            "conceptScores": [float(result[i]["concept_scores"][k]) for k in range(concept_cos.shape[1])],
            "specialScores": [float(result[i]["special_scores"][k]) for k in range(special_cos.shape[1])],
            "nsfw": bool(flags[i])}


def scores(checker, pixel_values):
    """diffusers' forward, with its per-image result dicts captured (forward returns only the flags)."""
    import diffusers.pipelines.stable_diffusion.safety_checker as module
    original = module.StableDiffusionSafetyChecker.forward
    # forward keeps its per-image scores to itself; every one of them passes through round(), in
    # order (special concepts, then concepts, image by image), so a module-level round() records them.
    rounded = []
    builtin_round = round

    def recording_round(x, n=None):
        value = builtin_round(x, n)
        rounded.append(float(value))
        return value

    module.round = recording_round
    try:
        images = np.zeros((pixel_values.shape[0], 1, 1, 3))
        _, flags = original(checker, clip_input=pixel_values, images=images)
    finally:
        del module.round
    special_count, concept_count = checker.special_care_embeds.shape[0], checker.concept_embeds.shape[0]
    per_image = special_count + concept_count
    assert len(rounded) == per_image * pixel_values.shape[0]
    result = []
    for i in range(pixel_values.shape[0]):
        row = rounded[i * per_image:(i + 1) * per_image]
        result.append({"special_scores": dict(enumerate(row[:special_count])),
                       "concept_scores": dict(enumerate(row[special_count:]))})
    return result, flags


def pipeline_images(processor, checker, workdir):
    """The txt2img batch diffusers would check, as the PIL images it hands the feature extractor."""
    helpers = pipelines.load_module("make_tokenizer_goldens")
    base, config = pipelines.build_pipeline("sd1-diffusers", helpers, workdir)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        images = base(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                      guidance_scale=GUIDANCE, generator=generator, num_images_per_prompt=BATCH, output_type="pil").images
    return base, config, [np.asarray(image) for image in images]


def run_pipeline(base, config, checker, processor):
    from diffusers import StableDiffusionPipeline, PNDMScheduler
    pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
                                   scheduler=PNDMScheduler.from_config(config), safety_checker=checker,
                                   feature_extractor=processor, requires_safety_checker=True)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        out = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                   guidance_scale=GUIDANCE, generator=generator, num_images_per_prompt=BATCH, output_type="np")
    return out.images, out.nsfw_content_detected


def write_fixtures(checker, processor):
    for folder in (FOLDER, BIN_FOLDER):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(FOLDER, "safety_checker"))
    os.makedirs(os.path.join(FOLDER, "feature_extractor"))
    os.makedirs(BIN_FOLDER)
    checker.config.save_pretrained(os.path.join(FOLDER, "safety_checker"))
    checker.config.save_pretrained(BIN_FOLDER)
    processor.save_pretrained(os.path.join(FOLDER, "feature_extractor"))
    flat = {k: v.detach().contiguous().clone() for k, v in checker.state_dict().items()}
    nested = {("vision_model." + k if k.startswith("vision_model.") else k): v for k, v in flat.items()}
    save_file(nested, os.path.join(FOLDER, "safety_checker", "model.safetensors"), metadata={"format": "pt"})
    torch.save(flat, os.path.join(BIN_FOLDER, "pytorch_model.bin"))


def reload_matches(checker):
    """diffusers loads both fixtures to the same weights (so both layouts are what it reads)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    expected = checker.state_dict()
    for folder in (os.path.join(FOLDER, "safety_checker"), BIN_FOLDER):
        loaded = StableDiffusionSafetyChecker.from_pretrained(folder).eval()
        got = loaded.state_dict()
        assert set(got) == set(expected), folder
        for k in expected:
            assert torch.equal(got[k], expected[k]), f"{folder}: {k} differs after loading"


def main():
    import diffusers
    import transformers
    from transformers import CLIPImageProcessor
    processor = CLIPImageProcessor()
    checker = make_checker()

    sources = [test_image(i, w, h) for i, (w, h) in enumerate(IMAGE_SIZES)]
    with tempfile.TemporaryDirectory() as workdir:
        base, config, generated = pipeline_images(processor, checker, workdir)
        everything = sources + generated
        pixel_values = processor([Image.fromarray(a) for a in everything], return_tensors="pt").pixel_values
        _, concept_cos, special_cos = cosines(checker, pixel_values)
        n = len(sources)
        groups = (list(range(n)), list(range(n, n + BATCH)))
        pick, split_concepts, adjusted = choose_thresholds(checker, concept_cos, special_cos, groups)

        write_fixtures(checker, processor)
        reload_matches(checker)

        os.makedirs(OUT_DIR, exist_ok=True)
        for name in os.listdir(OUT_DIR):
            os.remove(os.path.join(OUT_DIR, name))
        embeds, concept_cos, special_cos = cosines(checker, pixel_values)
        result, flags = scores(checker, pixel_values)
        images = []
        for i, source in enumerate(sources):
            Image.fromarray(source).save(os.path.join(OUT_DIR, f"source-{i}.png"))
            Image.fromarray(clip_resized(processor, source)).save(os.path.join(OUT_DIR, f"clip-{i}.png"))
            images.append({"source": f"source-{i}.png", "clip": f"clip-{i}.png", "width": source.shape[1],
                           "height": source.shape[0], **result_entry(embeds, concept_cos, special_cos, result, flags, i)})

        out_images, nsfw = run_pipeline(base, config, checker, processor)
        assert list(nsfw) == [bool(f) for f in flags[n:]], "the pipeline's flags differ from the checker's on its images"
        assert len(set(nsfw)) == 2, f"the txt2img batch should land on both sides: {nsfw}"
        assert all(np.all(out_images[i] == 0) for i in range(BATCH) if nsfw[i]), "flagged images should be black"
        txt2img = {"fixture": "sd1-diffusers", "prompt": PROMPT, "negativePrompt": NEGATIVE, "width": SIZE, "height": SIZE,
                   "steps": STEPS, "scheduler": "pndm", "guidanceScale": GUIDANCE, "seed": SEED, "batchSize": BATCH,
                   "nsfwContentDetected": [bool(f) for f in nsfw],
                   "images": [result_entry(embeds, concept_cos, special_cos, result, flags, n + i) for i in range(BATCH)]}

    with open(os.path.join(OUT_DIR, "goldens.json"), "w") as f:
        json.dump({"generator": "tools/goldens/make_safety_checker_goldens.py",
                   "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                "transformers": transformers.__version__},
                   "adjustmentImage": pick, "splitConcepts": split_concepts, "adjustedConcept": adjusted, "margin": MARGIN, "images": images, "txt2img": txt2img}, f, indent=1)
        f.write("\n")
    for i, entry in enumerate(images + txt2img["images"]):
        print(i, entry["nsfw"], entry["specialScores"][0], entry["conceptScores"][:2])


if __name__ == "__main__":
    main()
