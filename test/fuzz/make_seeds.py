"""Writes the fuzz targets' seed corpora (test/fuzz/corpus/<target>/): small, valid inputs of each
format, cut down from the test fixtures where there are some. Run from the repository root with
the tools' Python environment (tools/README.md): python test/fuzz/make_seeds.py"""
import io
import json
import os
import zipfile

import gguf
import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save as st_save

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "test", "fuzz", "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def fixture(*parts):
    with open(os.path.join(ROOT, "test", "fixtures", *parts), "rb") as f:
        return f.read()


def safetensors_subset(path, keep, metadata=None):
    """The tensors of a fixture whose names start with one of `keep`, shrunk to few elements where
    the shape allows (the reader checks sizes, not values)."""
    tensors = {}
    with safe_open(os.path.join(ROOT, "test", "fixtures", *path), "np") as f:
        meta = f.metadata() if metadata is None else metadata
        for key in f.keys():
            if any(key.startswith(k) for k in keep):
                tensors[key] = f.get_tensor(key)
    return st_save(tensors, metadata=meta)


def torch_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def gguf_bytes(build):
    path = os.path.join(CORPUS, "_tmp.gguf")
    writer = gguf.GGUFWriter(path, arch="sdnode")
    build(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    # safetensors: tiny files of each dtype, with metadata.
    write("safetensors", "cattoy.safetensors", fixture("lora", "cattoy.safetensors"))
    write("safetensors", "dtypes.safetensors", st_save({
        "a.f32": rng.standard_normal((2, 3)).astype(np.float32),
        "b.f16": rng.standard_normal((4,)).astype(np.float16),
        "c.i64": np.arange(3, dtype=np.int64),
        "d.f64": np.ones((1, 1), dtype=np.float64),
        "e.i8": np.arange(5, dtype=np.int8),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }, metadata={"format": "pt", "sdnode.family": "sd1"}))
    f16 = st_save({"x": np.zeros((2, 2), dtype=np.float16)})  # the same bytes as BF16, which numpy lacks
    header = f16[8:8 + int.from_bytes(f16[:8], "little")].replace(b'"F16"', b'"BF16"')
    write("safetensors", "bf16.safetensors", len(header).to_bytes(8, "little") + header + f16[8 + int.from_bytes(f16[:8], "little"):])

    # GGUF: metadata of every kind, plain and quantized tensors.
    def build(w):
        w.add_string("sdnode.family", "sd1")
        w.add_float32("sdnode.vae.scaling_factor", 0.18215)
        w.add_uint32("sdnode.image_size", 64)
        w.add_array("names", ["a", "b"])
        w.add_array("numbers", [1, 2, 3])
        w.add_bool("flag", True)
        w.add_tensor("f32", rng.standard_normal((2, 8)).astype(np.float32))
        w.add_tensor("f16", rng.standard_normal((3,)).astype(np.float16))
        q = gguf.quants.quantize(rng.standard_normal((1, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("q8_0", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    write("gguf", "small.gguf", gguf_bytes(build))
    write("gguf", "empty.gguf", gguf_bytes(lambda w: None))

    # PyTorch checkpoints and their data.pkl.
    checkpoints = {
        "state_dict.ckpt": fixture("model-files", "state_dict.ckpt"),
        "plain_state_dict.pt": fixture("model-files", "plain_state_dict.pt"),
        "non_contiguous.ckpt": fixture("model-files", "non_contiguous.ckpt"),
        "malicious_eval.ckpt": fixture("model-files", "malicious_eval.ckpt"),
        "types.pt": torch_bytes({"state_dict": {
            "h": torch.randn(2, 2).half(), "b": torch.randn(3).bfloat16(), "i": torch.arange(4),
            "nested": {"x": torch.randn(1)}, "view": torch.randn(4, 4)[1:3],
        }, "global_step": 875000, "epoch": 1.5, "flag": True, "name": "seed"}),
    }
    for name, data in checkpoints.items():
        write("checkpoint", name, data)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            pickle_name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            write("pickle", name.split(".")[0] + ".pkl", archive.read(pickle_name))

    # Textual-inversion embeddings (A1111 .pt, A1111 safetensors, diffusers learned_embeds).
    write("embedding", "tinystyle.pt", fixture("lora", "tinystyle.pt"))
    write("embedding", "tinystyle2.safetensors", fixture("lora", "tinystyle2.safetensors"))
    write("embedding", "cattoy.safetensors", fixture("lora", "cattoy.safetensors"))
    write("embedding", "learned_embeds.safetensors", st_save({"<cat>": rng.standard_normal((32,)).astype(np.float32)}))

    # LoRAs for the tiny SD 1.x model: a module or two of each format.
    te = "lora_te_text_model_encoder_layers_0_mlp_fc1."
    unet = "lora_unet_down_blocks_0_attentions_0_proj_in."
    write("lora", "kohya.safetensors", safetensors_subset(("lora", "sd1-kohya.safetensors"), (te, unet)))
    write("lora", "peft.safetensors", safetensors_subset(("lora", "sd1-peft.safetensors"),
                                                         ("text_encoder.text_model.encoder.layers.0.mlp.fc1.",)))
    write("lora", "loha.safetensors", safetensors_subset(("lora", "sd1-loha.safetensors"),
                                                         ("lora_te_text_model_encoder_layers_0_self_attn_q_proj.",)))
    write("lora", "lokr.safetensors", safetensors_subset(("lora", "sd1-lokr.safetensors"),
                                                         ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k.",)))
    with safe_open(os.path.join(ROOT, "test", "fixtures", "lora", "sd1-kohya.safetensors"), "pt") as f:
        write("lora", "kohya.pt", torch_bytes({k: f.get_tensor(k) for k in f.keys() if k.startswith(te)}))

    # Diffusers configs: model_index, unet, vae, text_encoder, scheduler, tokenizer, then metadata.
    for model in ("sd1-diffusers", "sd2-v-diffusers"):
        parts = []
        for file in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                     "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json"):
            path = os.path.join(ROOT, "test", "fixtures", "tiny", model, file)
            parts.append(open(path).read() if os.path.exists(path) else "")
        parts.append("")
        write("diffusers_config", model + ".txt", "\0".join(parts))
    write("diffusers_config", "metadata.txt", "\0" * 6 + "sdnode.family=sd1\nsdnode.prediction_type=v_prediction\n"
          "sdnode.image_size=64\nsdnode.vae.scaling_factor=0.5\nmodelspec.prediction_type=epsilon\nglobal_step=875000\n")

    # Prompts: A1111's syntax, and text for the tokenizer.
    golden = json.loads(fixture("prompts", "prompt_attention_golden.json"))
    prompts = [case["prompt"] for case in golden["attention"]][:8] + [case["prompt"] for case in golden["chunking"]][3:6]
    prompts.append("a photo of cattoy, ((masterpiece)), [[low quality]], (red:1.3) BREAK (blue:-0.5)")
    for i, prompt in enumerate(prompts):
        write("prompt_parser", f"prompt{i}.txt", prompt)
    write("tokenizer", "ascii.txt", "A painting of a flooble, it's 10 o'clock <|endoftext|> <|startoftext|>")
    write("tokenizer", "unicode.txt", "Ça\u00a0va? 日本語の文 \U0001F600 ١٢٣ e\u0301 straße")
    write("tokenizer", "merges.txt", "#version: 0.2\ni n\nt h\na n\nr e\nth e</w>\n")


if __name__ == "__main__":
    main()
