#!/usr/bin/env python3
"""Generate goldens for the prompt parser and the 77-token chunking of prompts.

Reference: the AUTOMATIC1111 web UI's own Python, run as is from a checkout:

  * modules/prompt_parser.py: parse_prompt_attention(text) -> [[text, weight], ...]
    (the attention syntax: (x), ((x)), (x:1.3), [x], escapes, BREAK, merging);
  * modules/sd_hijack_clip.py: FrozenCLIPEmbedderWithCustomWords.tokenize_line(prompt)
    -> 77-token chunks with per-token multipliers (comma backtracking, BREAK, padding),
    given transformers' CLIPTokenizer (the one make_tokenizer_goldens.py builds from
    native/core/data/bpe_simple_vocab_16e6.txt.gz).

Nothing of the web UI is copied here: its two modules are imported from the checkout. What they
import from the rest of the web UI (shared options, devices, the model hijack, textual
inversion) is replaced by small stand-ins below; `lark` (only used by prompt editing, which is
not exercised) is stubbed when it is not installed. Options: emphasis "Original" (the default),
comma_padding_backtrack 20 (the default), no textual-inversion embeddings.

The checkout: --webui takes a folder holding modules/ or a bare git directory (as the session's
`fetch` tool leaves it; the files are then read with `git show HEAD:...`). The web UI's own
repository is too large to mirror here, so the committed goldens were made with
github:VikingMew/minimal-sd, whose modules/prompt_parser.py and modules/sd_hijack_clip.py carry
A1111's parse_prompt_attention and tokenize_line (reformatted; same logic as
AUTOMATIC1111/stable-diffusion-webui master, compared line by line). Both option spellings
(opts.enable_emphasis of older versions, opts.emphasis of newer) are provided.

Usage (from the repository root, with the environment of tools/README.md):
    /work/pyenv/bin/python tools/goldens/make_prompt_goldens.py \
        --webui /work/.mirror/VikingMew+minimal-sd/repo
"""

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "test", "fixtures", "prompts", "prompt_attention_golden.json")

# --------------------------------------------------------------------------
# prompts
# --------------------------------------------------------------------------

ATTENTION_PROMPTS = [
    # plain and empty
    "",
    " ",
    "normal text",
    "a photo of an astronaut riding a horse on mars",
    # emphasis
    "an (important) word",
    "((double))",
    "(((triple)))",
    "((((((six))))))",
    "[less]",
    "[[much less]]",
    "([mixed])",
    "[(mixed)]",
    "(unnecessary)(parens)",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    # explicit weights
    "(word:1.3)",
    "(red hair:1.3), (blue eyes:0.8)",
    "(masterpiece:1.2), [blurry]",
    "(a:0)",
    "(a:-1)",
    "(a:+.5)",
    "(a:1.)",
    "(a:.5)",
    "(a:10)",
    "(a:0.0001)",
    "(a : 1.5)",
    "(a:1.5 )",
    "(a: 1.5)",
    "((a:1.2):1.3)",
    "((a):1.5)",
    "[(a:1.5)]",
    "(a:1.5]",
    "[a:1.5]",
    "(a:1.2",
    "a:1.2)",
    "(a:1.2)(b:1.2)",
    "(lowres, bad anatomy, bad hands, text, error, missing fingers:1.4)",
    "(a:\u0661.\u0665)",
    # unbalanced
    "(unbalanced",
    "((unbalanced",
    "[unbalanced",
    "unbalanced)",
    "unbalanced]",
    "a ) b ] c",
    "((a) b",
    "[a (b] c)",
    "(a [b) c]",
    "[[a]",
    "a]]",
    ")(",
    "][",
    # escapes and lone characters
    "\\(literal\\]",
    "\\(escaped parens\\)",
    "\\[escaped brackets\\]",
    "back\\\\slash",
    "lone \\ backslash",
    "C:\\Users\\name",
    "(a\\)b)",
    "\\((a)\\)",
    "trailing\\",
    "a:b:c",
    ":",
    "::",
    "(:)",
    "(:1.2)",
    "[cat:dog:0.5]",
    "[cat|dog]",
    "{curly} <angle>",
    # BREAK
    "forest BREAK castle",
    "BREAK",
    "BREAK a",
    "a BREAK",
    "a BREAK BREAK b",
    "aBREAK b",
    "a BREAKb",
    "a_BREAK b",
    "a break b",
    "a\tBREAK\nb",
    "a\u3000BREAK\u00a0b",
    "a\x1cBREAK b",
    "(a BREAK b)",
    "[a BREAK b]",
    "(a) BREAK (b)",
    "café BREAK naïve",
    "1BREAK 2 BREAK3",
    # mixed
    "masterpiece, (best quality:1.2), ((ultra detailed)), [lowres], BREAK 1girl, (solo:0.9)",
    "a (cat:1.5) AND a (dog:0.5)",
    "(東京:1.2) [猫]",
    "(émoji 🐱:1.1)",
]

# Prompts for the chunking goldens (A1111's tokenize_line on our reference tokenizer).
WORDS = ("cat dog house tree river mountain castle forest dragon knight wizard ocean city robot "
         "flower garden sunset night star moon").split()


def words(n, start=0):
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def comma_list(n, per_item=1):
    return ", ".join(words(per_item, i) for i in range(n))


CHUNK_PROMPTS = [
    "",
    "a cat",
    "(a cat:1.3), [a dog]",
    words(74),
    words(75),
    words(76),
    words(150),
    words(151),
    words(200),
    comma_list(40),                              # single-token items: commas every other token
    comma_list(30, 2),
    comma_list(25, 3),
    words(70) + ", " + words(10),                # comma 5 tokens before the boundary
    words(54) + ", " + words(30),                # comma 21 tokens back: no backtracking
    words(55) + ", " + words(30),                # comma 20 tokens back: backtracking
    words(74) + ", " + words(10),                # comma is the 75th token
    words(73) + ", " + words(10),                # comma is the 74th token
    words(75) + ", " + words(10),                # comma would be the 76th token
    words(60) + ", (" + words(30) + ":1.4)",     # weights carried into the next chunk
    "a cat BREAK a dog",
    "BREAK a dog",
    "a cat BREAK",
    "a BREAK BREAK b",
    "(a BREAK b)",
    words(80) + " BREAK " + words(5),
    words(75) + " BREAK " + words(5),
    "a cat <|endoftext|> a dog",
    ", ".join(["best quality"] * 40),
    "masterpiece, (best quality:1.2), ((ultra detailed)), [lowres], BREAK 1girl, (solo:0.9)",
]


# --------------------------------------------------------------------------
# loading the web UI modules
# --------------------------------------------------------------------------

def read_webui_file(webui, rel):
    path = os.path.join(webui, rel)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    # a bare git directory
    return subprocess.run(["git", "--git-dir", webui, "show", "HEAD:" + rel],
                          check=True, capture_output=True).stdout


def webui_commit(webui):
    try:
        git_dir = webui if not os.path.isdir(os.path.join(webui, "modules")) else os.path.join(webui, ".git")
        return subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except Exception:
        return "unknown"


def webui_name(webui):
    # The fetch tool mirrors github:owner/name into .../owner+name/repo.
    path = os.path.abspath(webui)
    base = os.path.basename(path)
    if base in ("repo", ".git"):
        base = os.path.basename(os.path.dirname(path))
    return "github:" + base.replace("+", "/") if "+" in base else base


class _Opts:
    # Defaults of the web UI's settings that tokenize_line reads.
    enable_emphasis = True       # older name
    emphasis = "Original"        # newer name
    comma_padding_backtrack = 20
    use_old_emphasis_implementation = False
    CLIP_stop_at_last_layers = 1


def install_stand_ins():
    if importlib.util.find_spec("lark") is None:
        lark = types.ModuleType("lark")

        class Lark:  # prompt editing's grammar; never parsed here
            def __init__(self, *args, **kwargs):
                pass

        lark.Lark = Lark
        lark.Visitor = object
        lark.Transformer = object
        lark.exceptions = types.SimpleNamespace(LarkError=Exception)
        sys.modules["lark"] = lark

    package = types.ModuleType("modules")
    package.__path__ = []
    sys.modules["modules"] = package
    for name in ("devices", "sd_hijack", "sd_emphasis", "shared"):
        module = types.ModuleType("modules." + name)
        setattr(package, name, module)
        sys.modules["modules." + name] = module
    sys.modules["modules.shared"].opts = _Opts()
    sys.modules["modules.sd_hijack"].StableDiffusionModelHijack = object


def load_webui_module(webui, name, tmp):
    source = read_webui_file(webui, "modules/%s.py" % name)
    path = os.path.join(tmp, name + ".py")
    with open(path, "wb") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("modules." + name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["modules." + name] = module
    setattr(sys.modules["modules"], name, module)
    spec.loader.exec_module(module)
    return module, hashlib.sha256(source).hexdigest()


def load_tokenizer_goldens_module():
    path = os.path.join(REPO_ROOT, "tools", "goldens", "make_tokenizer_goldens.py")
    spec = importlib.util.spec_from_file_location("make_tokenizer_goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--webui", required=True, help="web UI checkout folder or bare git directory")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    import transformers
    from transformers import CLIPTokenizer

    tmp = tempfile.mkdtemp(prefix="webui_")
    install_stand_ins()
    prompt_parser, parser_sha = load_webui_module(args.webui, "prompt_parser", tmp)
    hijack_clip, hijack_sha = load_webui_module(args.webui, "sd_hijack_clip", tmp)

    # The parser's own doctest examples must come out as documented.
    assert prompt_parser.parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")[1] == ["house", 1.5730000000000004]

    attention = []
    for prompt in dict.fromkeys(ATTENTION_PROMPTS):
        try:
            parsed = prompt_parser.parse_prompt_attention(prompt)
            attention.append({"prompt": prompt, "parsed": [[t, float(w)] for t, w in parsed]})
        except Exception as e:  # e.g. float('1.2.3'): the web UI fails the whole generation
            attention.append({"prompt": prompt, "error": type(e).__name__})
    # A weight Python's float() cannot read stops the web UI with an error; recorded, not compared.
    for prompt in ("(word:1.2.3)", "(a:.)", "(a:..5)"):
        try:
            prompt_parser.parse_prompt_attention(prompt)
            raise AssertionError("expected an error for " + prompt)
        except ValueError as e:
            attention.append({"prompt": prompt, "error": type(e).__name__, "message": str(e)})

    # tokenize_line over our reference CLIPTokenizer (SD 1.x: padding with <|endoftext|>).
    tg = load_tokenizer_goldens_module()
    vocab, merges = tg.build_vocab(tg.DEFAULT_VOCAB)
    tok_root = os.path.join(tmp, "sd")
    tg.write_tokenizer_folder(os.path.join(tok_root, "tokenizer"), vocab, merges)
    tokenizer = CLIPTokenizer.from_pretrained(tok_root, subfolder="tokenizer")

    class NoEmbeddings:
        def find_embedding_at_position(self, tokens, offset):
            return None, None

    wrapped = types.SimpleNamespace(tokenizer=tokenizer)
    hijack = types.SimpleNamespace(embedding_db=NoEmbeddings(), fixes=None)
    embedder = hijack_clip.FrozenCLIPEmbedderWithCustomWords(wrapped, hijack)
    assert embedder.comma_token == 267 and embedder.id_start == 49406 and embedder.id_end == 49407

    chunking = []
    for prompt in dict.fromkeys(CHUNK_PROMPTS):
        chunks, token_count = embedder.tokenize_line(prompt)
        for c in chunks:
            assert len(c.tokens) == 77 and len(c.multipliers) == 77
        chunking.append({"prompt": prompt, "token_count": token_count,
                         "chunks": [{"ids": list(c.tokens), "weights": [float(m) for m in c.multipliers]} for c in chunks]})

    result = {
        "source": ("AUTOMATIC1111 web UI modules run from %s (HEAD %s): modules/prompt_parser.py sha256 %s "
                   "(parse_prompt_attention), modules/sd_hijack_clip.py sha256 %s "
                   "(FrozenCLIPEmbedderWithCustomWords.tokenize_line) with emphasis 'Original', "
                   "comma_padding_backtrack 20, no embeddings; tokenizer: transformers %s CLIPTokenizer "
                   "built as in make_tokenizer_goldens.py; generated by tools/goldens/make_prompt_goldens.py; "
                   "python %s" % (webui_name(args.webui), webui_commit(args.webui), parser_sha, hijack_sha, transformers.__version__,
                                  sys.version.split()[0])),
        "notes": ("attention: [text, weight] pairs as parse_prompt_attention returns them; a BREAK is "
                  "['BREAK', -1] (its weight is multiplied by enclosing brackets like any other, and only "
                  "exactly -1 starts a new chunk). Cases with 'error' are prompts the web UI rejects. "
                  "chunking: tokenize_line's chunks of 77 ids (bos, 75 tokens or <|endoftext|> padding, eos) "
                  "and multipliers; SD 1.x padding, so no pad-id replacement happens."),
        "attention": attention,
        "chunking": chunking,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %s: %d attention cases, %d chunking cases, %d bytes"
          % (args.out, len(attention), len(chunking), os.path.getsize(args.out)))


if __name__ == "__main__":
    main()
