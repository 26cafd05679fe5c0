#!/usr/bin/env python3
"""Generate CLIP tokenizer goldens for the native tokenizer.

Reference: transformers' CLIPTokenizer, loaded the way diffusers loads the
tokenizer of a Stable Diffusion 1.x pipeline (CLIPTokenizer.from_pretrained on
the pipeline's `tokenizer/` folder holding vocab.json + merges.txt +
tokenizer_config.json).  No hub access is needed: vocab.json and merges.txt are
rebuilt here from OpenAI CLIP's bpe_simple_vocab_16e6.txt.gz
(native/core/data/), the same way OpenAI CLIP / open_clip build their vocabulary:

    256 byte symbols (GPT-2 style byte->unicode table)
    + the same 256 symbols with '</w>' appended
    + every merge (lines 1 .. 48894 of the file) joined into one symbol
    + '<|startoftext|>' (49406), '<|endoftext|>' (49407)          = 49408 entries

Every prompt is also run through open_clip's SimpleTokenizer as a cross-check;
where the two disagree the case carries `open_clip_ids` and the reason is
summarised in the output's `open_clip_notes`.  transformers is the reference.

Known, expected differences transformers vs open_clip (see open_clip_notes):
  * open_clip runs ftfy.fix_text + html.unescape (twice) before tokenizing;
    transformers 5 does not (no ftfy, no HTML unescaping): '&amp;' stays
    '&', 'amp', ';' in transformers.  ftfy also turns curly quotes into
    straight ones, fixes mojibake, etc.
  * open_clip lower-cases with Python's str.lower() (final sigma aware:
    'ΟΔΟΣ' -> 'οδος'); transformers lower-cases char by char ('οδοσ').
  * open_clip splits on Python's str.split() whitespace (includes
    U+001C..U+001F, U+0085 ...); transformers uses the Oniguruma '\\s' class.
  * open_clip's special-token strings are '<start_of_text>'/'<end_of_text>';
    transformers recognises '<|startoftext|>'/'<|endoftext|>' inside the text
    as the special ids 49406/49407.

Usage (from the repository root, with the environment of tools/README.md):
    PYTHONPATH=/work/refs/diffusers/src /work/pyenv/bin/python \
        tools/goldens/make_tokenizer_goldens.py
"""

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import sys
import tempfile
import unicodedata

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_VOCAB = os.path.join(REPO_ROOT, "native", "core", "data", "bpe_simple_vocab_16e6.txt.gz")
DEFAULT_OUT = os.path.join(REPO_ROOT, "test", "fixtures", "tokenizer", "clip_tokenizer_golden.json")

N_MERGES = 49152 - 256 - 2  # 48894, as in OpenAI CLIP
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


# --------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------

def byte_symbols():
    """The reversible byte -> printable-unicode table (GPT-2 / CLIP).

    Printable Latin-1 bytes map to themselves; the other 68 bytes are given the
    code points 256, 257, ... in increasing byte order.  Returned in CLIP's
    vocabulary order: the printable ones first (ascending), then the rest.
    """
    keep = [b for b in range(256)
            if ord("!") <= b <= ord("~") or ord("\u00a1") <= b <= ord("\u00ac") or ord("\u00ae") <= b <= ord("\u00ff")]
    keep_set = set(keep)
    moved = [b for b in range(256) if b not in keep_set]
    table = [(b, chr(b)) for b in keep]
    table += [(b, chr(256 + i)) for i, b in enumerate(moved)]
    return table


def build_vocab(gz_path):
    with gzip.open(gz_path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1:1 + N_MERGES]
    assert len(merges) == N_MERGES and all(len(m.split()) == 2 for m in merges)
    symbols = [s for _, s in byte_symbols()]
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m.split()) for m in merges]
    vocab += [BOS, EOS]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    return vocab, merges


def write_tokenizer_folder(folder, vocab, merges):
    """A diffusers-style `tokenizer/` folder (what SD 1.x pipelines ship)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.write("\n".join(merges))
        f.write("\n")

    def added(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False,
                "normalized": True, "rstrip": False, "single_word": False}

    # Same settings as the tokenizer_config.json of SD 1.x checkpoints
    # (derived from openai/clip-vit-large-patch14).
    config = {
        "add_prefix_space": False,
        "bos_token": added(BOS),
        "do_lower_case": True,
        "eos_token": added(EOS),
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": EOS,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added(EOS),
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(folder, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": added(BOS), "eos_token": added(EOS), "pad_token": EOS,
                   "unk_token": added(EOS)}, f, indent=2)


# --------------------------------------------------------------------------
# prompts
# --------------------------------------------------------------------------

LONG_1 = (
    "a highly detailed matte painting of a sprawling cyberpunk city at night, neon signs reflecting "
    "in rain-soaked streets, flying cars weaving between towering skyscrapers, holographic billboards "
    "advertising ramen and robot repair, crowds of people with umbrellas, steam rising from manholes, "
    "volumetric fog, cinematic lighting, ultra wide angle lens, octane render, unreal engine 5, "
    "trending on artstation, by greg rutkowski and syd mead and simon stalenhag, 8k resolution, "
    "sharp focus, intricate details, masterpiece, award winning photograph"
)
LONG_2 = ", ".join(["best quality"] * 40)
LONG_3 = " ".join(str(i) for i in range(1, 61))
LONG_4 = "(" * 50 + "cat" + ")" * 50 + " " + "word " * 80
LONG_5 = ("The quick brown fox jumps over the lazy dog. " * 12).strip()

FIXED_PROMPTS = [
    # --- reference and plain English
    "A painting of a flooble",
    "a photo of an astronaut riding a horse on mars",
    "A photograph of an astronaut riding a horse",
    "portrait of a young woman, oil on canvas",
    "a cat",
    "cat",
    "dog",
    "hello world",
    "Hello World",
    "HELLO WORLD",
    "hElLo WoRlD",
    "The quick brown fox jumps over the lazy dog",
    "a red apple on a wooden table, studio lighting",
    "a beautiful landscape with mountains and a lake at sunset",
    "an oil painting of a lighthouse in a storm",
    "a close-up photo of a dew-covered spider web",
    "a watercolor illustration of a fox in the snow",
    "steampunk airship over victorian london",
    "isometric pixel art of a cozy bedroom",
    "a bowl of ramen, food photography, 35mm",
    "supercalifragilisticexpialidocious",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "xqzvbnm qwrtps zzzzzzzz",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "lol",
    "a",
    "I",
    "x y z",
    # --- empty and whitespace only
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " \t\n\r\f\v ",
    "\u00a0",
    "\u3000",
    # --- odd whitespace around and inside words
    "  leading spaces",
    "trailing spaces   ",
    "   both sides   ",
    "multiple    spaces     between   words",
    "tab\tseparated\twords",
    "new\nline\nseparated",
    "windows\r\nline\r\nendings",
    "vertical\vtab and form\ffeed",
    "non\u00a0breaking\u00a0space",
    "narrow\u202fno-break space",
    "em\u2003space en\u2002space thin\u2009space hair\u200aspace",
    "ideographic\u3000space",
    "line\u2028separator paragraph\u2029separator",
    "next\u0085line",
    "ogham\u1680space medium\u205fmath",
    "zero\u200bwidth\u200bspace",
    "zero\u200dwidth\u200cjoiners",
    "byte\ufefforder mark",
    "\ufeffstarts with bom",
    "file\x1cgroup\x1drecord\x1eunit\x1fseparators",
    "nul\x00char",
    "bell\x07and\x1bescape",
    "del\x7fchar",
    "c1\x80\x9fcontrols",
    " \t mixed \n\n whitespace \r\n everywhere \t ",
    # --- apostrophes and contractions
    "it's a dog's life",
    "don't can't won't shouldn't",
    "we're they're you're",
    "I've we've they've",
    "I'm",
    "I'll we'll",
    "I'd you'd",
    "IT'S A DOG'S LIFE",
    "DON'T WE'RE I'VE I'M I'LL I'D",
    "It'S mixed CaSe'T",
    "'s 't 're 've 'm 'll 'd",
    "'s't're've'm'll'd",
    "''s",
    "'''",
    "rock 'n' roll",
    "o'clock o'neill",
    "the 90's",
    "’s curly apostrophe it’s",
    "‘single’ “double” quotes",
    "`backticks` and ´acute´",
    "'quoted'",
    "\"double quoted\"",
    "'sss 'tt 'ree",
    "'S",
    "'d'd'd",
    # --- numbers
    "1234567",
    "0",
    "42",
    "3.14",
    "3.14159265358979",
    "1,000",
    "1,000,000",
    "-5",
    "+7",
    "1e10",
    "0x1F",
    "50%",
    "$100",
    "€20",
    "£5.99",
    "¥1000",
    "2024-01-01",
    "12:30pm",
    "1920x1080",
    "4k 8k 16k",
    "1st 2nd 3rd 4th",
    "v1.5 v2.1",
    "sd-v1-4.ckpt",
    "x² + y³ = z¹",
    "½ ¼ ¾",
    "Ⅻ Ⅳ ⅷ",
    "٠١٢٣٤٥٦٧٨٩",
    "०१२३",
    "１２３",
    "①②③",
    # --- punctuation
    "!!!",
    "???",
    "...",
    "…",
    "!?!?!?",
    "hello, world!",
    "wait... what?!",
    "a---b___c",
    "--==++**",
    "~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./",
    "<>",
    "<html>",
    "@user #hashtag",
    "email@example.com",
    "https://example.com/path?q=1&r=2#frag",
    "C:\\Users\\name\\file.txt",
    "/usr/local/bin",
    "a|b|c",
    "semi;colon:colon",
    "(((",
    ")))",
    "[[[]]]",
    "{{{}}}",
    "• bullet · middot",
    "— em dash – en dash",
    "«guillemets» „low quotes“",
    "¡hola! ¿qué?",
    "§ ¶ † ‡ © ® ™",
    "♠ ♣ ♥ ♦ ★ ☆",
    "→ ← ↑ ↓ ⇒",
    "∑ ∫ √ ∞ ≠ ≤ ≥",
    # --- A1111 / prompt-weighting syntax (taken literally by the tokenizer)
    "(masterpiece:1.2), [blurry]",
    "(masterpiece), ((best quality)), (((ultra detailed)))",
    "[[low quality]], [worst quality:1.4]",
    "(red hair:1.3), (blue eyes:0.8)",
    "{best quality}, {{masterpiece}}",
    "a (cat:1.5) AND a (dog:0.5)",
    "forest BREAK castle",
    "<lora:detail_tweaker:0.8>, portrait",
    "<hypernet:anime:1>",
    "embedding:easynegative",
    "[cat:dog:0.5]",
    "[cat|dog]",
    "\\(escaped parens\\)",
    "(word:1.2:extra)",
    "(:1.2)",
    "(lowres, bad anatomy, bad hands, text, error, missing fingers:1.4)",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile",
    "score_9, score_8_up, score_7_up",
    # --- HTML entities and markup (no unescaping in transformers 5)
    "&amp;",
    "salt &amp; pepper",
    "&lt;tag&gt;",
    "&quot;quoted&quot;",
    "&#39;apos&#39;",
    "&#x27;hex&#x27;",
    "&nbsp;",
    "&amp;amp;",
    "rock &amp; roll &copy; 2024",
    "<b>bold</b>",
    "<br/>",
    "AT&T",
    # --- special-token strings inside the text
    "<|startoftext|>",
    "<|endoftext|>",
    "a <|endoftext|> b",
    "x<|startoftext|>y<|endoftext|>z",
    "<|ENDOFTEXT|>",
    "<|STARTOFTEXT|>",
    "<|StartOfText|> hi <|EndOfText|>",
    "<|endoftext",
    "<start_of_text> <end_of_text>",
    # --- accents, NFC / NFD, case mapping
    "café",
    "cafe\u0301",
    "CAFÉ",
    "naïve résumé",
    "Crème Brûlée",
    "São Paulo",
    "Zürich Österreich Ärger",
    "straße STRASSE",
    "ẞ",
    "İstanbul",
    "ı dotless",
    "ǅemal ǈ ǋ",
    "ΟΔΟΣ",
    "Σ",
    "ΣΑΣ σας",
    "Ωmega µicro",
    "ﬁ ﬂ ligatures",
    "Ａｂｃ ｆｕｌｌｗｉｄｔｈ",
    "Å Å Å",
    "ñ n\u0303",
    "e\u0301\u0301\u0301",
    "a\u0308\u0304",
    "\u1100\u1161\u11a8",
    "Ǆ ǆ",
    "K Kelvin sign",
    "Ⓐⓑⓒ",
    "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄",
    # --- other scripts
    "東京タワーの夜景",
    "一只可爱的猫",
    "山水画，水墨",
    "한국어 텍스트",
    "ひらがな カタカナ",
    "日本語と English の mix",
    "Привет, мир!",
    "ПРИВЕТ МИР",
    "Ёлка ёжик",
    "Київ",
    "مرحبا بالعالم",
    "السلام عليكم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีครับ",
    "Γειά σου κόσμε",
    "Ελληνικά ΚΕΦΑΛΑΙΑ",
    "ქართული",
    "Հայերեն",
    "ትግርኛ",
    "தமிழ்",
    "Tiếng Việt có dấu",
    "ᚠᚢᚦᚨᚱᚲ",
    "𓀀𓀁",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\U00020000\U0002a6d6",
    # --- emoji
    "😀",
    "a cat 🐱 and a dog 🐶",
    "🔥🔥🔥",
    "👍🏽",
    "👨‍👩‍👧‍👦 family",
    "🇺🇸 🇯🇵 🇩🇪",
    "❤️ ❤",
    "1️⃣ #️⃣",
    "✨sparkles✨",
    "🏳️‍🌈",
    "🤖 robot, 🚀 rocket, 🌍 earth",
    "☕",
    "\U0001fae0 melting face",
    # --- long prompts (> 77 tokens)
    LONG_1,
    LONG_2,
    LONG_3,
    LONG_4,
    LONG_5,
]


WORDS = (
    "portrait landscape castle dragon forest ocean city robot knight wizard princess warrior "
    "cyberpunk steampunk fantasy sci-fi cinematic dramatic lighting volumetric fog bokeh "
    "masterpiece quality detailed intricate photorealistic hyperrealistic octane render unreal "
    "engine artstation concept art illustration painting sketch watercolor oil canvas anime "
    "manga studio ghibli pixar disney sunset sunrise night moon stars galaxy nebula mountain "
    "river waterfall flower garden rose tulip cherry blossom autumn winter snow rain storm "
    "golden hour blue red green purple orange pink black white silver gold crystal glass "
    "metal wooden stone marble neon glowing shiny matte soft sharp focus depth field wide "
    "angle telephoto macro lens 35mm 85mm f/1.8 iso dslr canon nikon sony film grain vintage "
    "retro futuristic ancient medieval victorian gothic baroque minimalist abstract surreal "
    "cat dog fox wolf owl eagle horse tiger lion bear rabbit deer butterfly jellyfish whale "
    "woman man girl boy child elderly smiling serious beautiful handsome cute ugly deformed "
    "blurry lowres jpeg artifacts watermark signature text cropped bad anatomy extra fingers"
).split()

SCRIPT_WORDS = (
    "東京 猫 山 水 花 夜 한국 고양이 ひかり カメラ Привет кошка ЗИМА مرحبا قطة שלום "
    "नमस्ते Γάτα ΝΥΧΤΑ café naïve Ölbild straße ñandú Ærø Øst Łódź İzmir ǅ"
).split()

EMOJI = ["😀", "🐱", "🔥", "✨", "👍🏽", "❤️", "🇫🇷", "👩‍🎨", "🌸", "🎨", "⭐", "🌙"]

ODD_CHARS = (
    [chr(c) for c in range(0x20, 0x7f)]
    + list("\t\n\r\u00a0\u3000\u2003\u200b\u0085\x1c\x00")
    + list("éÉüÜßẞİıΣσςΩµﬁＡａ１¹½Ⅻ٣")
    + list("東京猫한국ひカЖжءאधก")
    + ["\u0301", "\u0308", "\u200d", "\ufe0f", "\U0001f600", "\U0001f3fd", "\U0001d400", "\U00020000"]
)


def generated_prompts(seed=20240817):
    rng = random.Random(seed)
    out = []

    def weighted(word):
        r = rng.random()
        if r < 0.15:
            return "(%s:%.1f)" % (word, rng.uniform(0.5, 1.6))
        if r < 0.25:
            return "(" * rng.randint(1, 3) + word + ")" * rng.randint(1, 3)
        if r < 0.32:
            return "[%s]" % word
        return word

    def casing(word):
        r = rng.random()
        if r < 0.15:
            return word.upper()
        if r < 0.3:
            return word.capitalize()
        if r < 0.35:
            return "".join(c.upper() if rng.random() < 0.5 else c for c in word)
        return word

    # SD-style comma-separated prompts
    for _ in range(90):
        n = rng.randint(1, 14)
        parts = []
        for _ in range(n):
            k = rng.randint(1, 3)
            phrase = " ".join(casing(rng.choice(WORDS)) for _ in range(k))
            parts.append(weighted(phrase))
        sep = rng.choice([", ", ",", " , ", " ", ". ", " | "])
        out.append(sep.join(parts))

    # mixed scripts, emoji, numbers, apostrophes
    for _ in range(60):
        n = rng.randint(1, 10)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.35:
                parts.append(casing(rng.choice(WORDS)))
            elif r < 0.55:
                parts.append(rng.choice(SCRIPT_WORDS))
            elif r < 0.68:
                parts.append(rng.choice(EMOJI))
            elif r < 0.8:
                parts.append(rng.choice(["%d" % rng.randint(0, 10 ** rng.randint(1, 9)),
                                         "%.*f" % (rng.randint(1, 4), rng.uniform(0, 1000)),
                                         "{:,}".format(rng.randint(1000, 10 ** 8))]))
            elif r < 0.9:
                parts.append(rng.choice(WORDS) + rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "’s"]))
            else:
                parts.append("".join(rng.choice("!?.,;:-_=+*&^%$#@~`'\"/\\|<>()[]{}") for _ in range(rng.randint(1, 6))))
        sep = "".join(rng.choice([" ", " ", " ", "  ", "\t", "\n", ", ", "\u00a0"]) for _ in range(1))
        text = sep.join(parts)
        if rng.random() < 0.2:
            text = rng.choice([" ", "  ", "\n", "\t "]) + text
        if rng.random() < 0.2:
            text = text + rng.choice([" ", "  ", "\n", " \t"])
        out.append(text)

    # character soup (valid Unicode scalar values only)
    for _ in range(40):
        n = rng.randint(1, 24)
        out.append("".join(rng.choice(ODD_CHARS) for _ in range(n)))

    # random code points from the BMP and beyond.  Only characters assigned in
    # Unicode 14 (Python 3.11's unicodedata; no Cn, Cs, Co): characters added
    # later are classified differently by tokenizers' Oniguruma tables and by
    # Python's `regex`, so goldens on them would pin one Unicode version.
    for _ in range(15):
        n = rng.randint(1, 12)
        chars = []
        while len(chars) < n:
            cp = rng.choice([rng.randint(0x20, 0x7ff), rng.randint(0x800, 0xffff), rng.randint(0x10000, 0x2ffff)])
            if unicodedata.category(chr(cp)) in ("Cn", "Cs", "Co"):
                continue
            chars.append(chr(cp))
        out.append("".join(chars))

    # long generated prompts (> 77 tokens)
    for _ in range(6):
        n = rng.randint(40, 120)
        out.append(", ".join(casing(rng.choice(WORDS)) for _ in range(n)))
    return out


# --------------------------------------------------------------------------
# open_clip cross-check
# --------------------------------------------------------------------------

def load_open_clip_tokenizer_module():
    """open_clip's tokenizer module, loaded on its own.

    `import open_clip` pulls in torchvision, whose CPU wheel is not available
    here; the tokenizer module itself only needs ftfy, regex, numpy and torch.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer.py")
    mod_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer_standalone", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def transformers_like_clean(text):
    """What transformers' CLIP normalizer does, in Python, for the core cross-check."""
    import regex
    text = unicodedata.normalize("NFC", text)
    text = regex.sub(r"\s+", " ", text)
    return "".join(c.lower() for c in text)  # per character: no final-sigma rule


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--no-open-clip", action="store_true", help="skip the open_clip cross-check")
    args = ap.parse_args()

    import tokenizers
    import transformers
    from transformers import CLIPTokenizer

    with open(args.vocab, "rb") as f:
        vocab_sha256 = hashlib.sha256(f.read()).hexdigest()
    vocab, merges = build_vocab(args.vocab)

    tmp = tempfile.mkdtemp(prefix="clip_tok_")
    tok_dir = os.path.join(tmp, "tokenizer")
    write_tokenizer_folder(tok_dir, vocab, merges)

    # As diffusers' StableDiffusionPipeline.from_pretrained does for SD 1.x.
    tok = CLIPTokenizer.from_pretrained(tmp, subfolder="tokenizer")
    # And straight from the two files, which must agree.
    tok_files = CLIPTokenizer(vocab=os.path.join(tok_dir, "vocab.json"), merges=os.path.join(tok_dir, "merges.txt"))

    assert len(tok) == 49408, len(tok)
    assert tok.bos_token_id == 49406 and tok.eos_token_id == 49407
    ref = tok("A painting of a flooble").input_ids
    assert ref == [49406, 320, 3086, 539, 320, 4062, 1059, 49407], ref
    vocab_json = tok.get_vocab()
    assert all(vocab_json[t] == i for i, t in enumerate(vocab)), "vocab order differs"

    prompts = list(FIXED_PROMPTS) + generated_prompts()
    seen = set()
    prompts = [p for p in prompts if not (p in seen or seen.add(p))]

    cases = []
    n_bos_normalized = 0
    for text in prompts:
        enc = tok(text, add_special_tokens=True, padding=False, truncation=False)
        ids = list(enc.input_ids)
        ids2 = list(tok_files(text, padding=False, truncation=False).input_ids)
        if ids != ids2:
            # The SD 1.x tokenizer_config marks bos as normalized=True, so the
            # added-token matcher sees the lower-cased text there and
            # '<|STARTOFTEXT|>' is bos as well; a plain CLIPTokenizer(vocab, merges)
            # matches specials case-sensitively only.  Nothing else may differ.
            assert "<|startoftext|>" in text.lower(), (text, ids, ids2)
            n_bos_normalized += 1
        assert ids[0] == 49406 and ids[-1] == 49407
        cases.append({"text": text, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids)})

    ftfy_used = "ftfy" in sys.modules  # transformers 5's CLIPTokenizer never imports it

    # decode goldens
    decode_texts = [
        "A painting of a flooble",
        "  Hello,   WORLD!!  it's 3.14 o'clock  ",
        "(masterpiece:1.2), [blurry] &amp; café 東京 🐱",
        "a <|endoftext|> b",
        "",
        "Привет мир, naïve résumé",
        LONG_1,
    ]
    decode_cases = []
    for text in decode_texts:
        ids = list(tok(text).input_ids)
        decode_cases.append({"text": text, "ids": ids,
                             "skip_special_tokens": tok.decode(ids, skip_special_tokens=True),
                             "with_special_tokens": tok.decode(ids, skip_special_tokens=False)})
    # raw id lists: partial UTF-8 byte sequences, specials in the middle, no bos/eos
    for ids in ([49406, 171, 49407],            # lone 0xEF byte
                [49406, 171, 121, 49407],       # two of three bytes of U+FF41
                [320, 3086],                    # no specials
                [49406, 49406, 320, 49407, 49407, 49407],
                [49406, 2368, 49407, 2368, 49407],
                [256, 511, 49405]):             # first/last byte symbols, last merge
        decode_cases.append({"text": None, "ids": ids,
                             "skip_special_tokens": tok.decode(ids, skip_special_tokens=True),
                             "with_special_tokens": tok.decode(ids, skip_special_tokens=False)})

    # open_clip cross-check
    open_clip_info = None
    n_diff_full = n_diff_core = 0
    if not args.no_open_clip:
        oc = load_open_clip_tokenizer_module()
        if oc is None:
            print("open_clip not installed: cross-check skipped", file=sys.stderr)
        else:
            st = oc.SimpleTokenizer(bpe_path=args.vocab)
            assert st.vocab_size == 49408
            # same vocabulary apart from the two special-token spellings
            for t, i in st.encoder.items():
                assert i >= 49406 or vocab[i] == t
            core = oc.SimpleTokenizer(bpe_path=args.vocab)
            core.clean_fn = transformers_like_clean
            core_diffs = []
            for case in cases:
                text = case["text"]
                full = [49406] + st.encode(text) + [49407]
                if full != case["ids"]:
                    case["open_clip_ids"] = full
                    n_diff_full += 1
                if any(s in text.lower() for s in ("<|startoftext|>", "<|endoftext|>", "<start_of_text>", "<end_of_text>")):
                    continue  # specials inside text: transformers-only behaviour
                core_ids = [49406] + core.encode(text) + [49407]
                if core_ids != case["ids"]:
                    n_diff_core += 1
                    core_diffs.append(text)
            import ftfy
            open_clip_info = {
                "version": importlib.metadata.version("open_clip_torch"),
                "ftfy_version": ftfy.__version__,
                "cases_differing": n_diff_full,
                "cases_differing_with_transformers_normalization": n_diff_core,
                "core_differences": core_diffs,
            }
            # The BPE, the split regex and the byte mapping must agree exactly;
            # what differs is only the text clean-up (ftfy, html, whitespace,
            # lowercasing), which open_clip_ids on a case reflects.
            assert n_diff_core == 0, core_diffs

    result = {
        "source": ("transformers %s CLIPTokenizer (tokenizers %s backend), loaded with "
                   "CLIPTokenizer.from_pretrained(<dir>, subfolder='tokenizer') as diffusers does for SD 1.x, "
                   "vocab.json/merges.txt rebuilt from bpe_simple_vocab_16e6.txt.gz (sha256 %s); "
                   "generated by tools/goldens/make_tokenizer_goldens.py; python %s"
                   % (transformers.__version__, tokenizers.__version__, vocab_sha256,
                      sys.version.split()[0])),
        "normalization": (
            "transformers 5 CLIPTokenizer, no ftfy (ftfy imported: %s) and no HTML unescaping. "
            "1) special tokens written in the text are split off first: '<|endoftext|>' (exact, "
            "case-sensitive) -> 49407 and '<|startoftext|>' -> 49406; with the SD 1.x tokenizer_config "
            "(bos normalized=true) bos is matched on the normalized text, so '<|StartOfText|>' is 49406 too, "
            "while '<|ENDOFTEXT|>' is ordinary text. "
            "2) each remaining segment: Unicode NFC; every run of White_Space characters (exactly: U+0009..U+000D, "
            "U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000; not "
            "U+001C..U+001F, U+200B, U+FEFF) replaced by one space; lower-cased character by character "
            "(Unicode lowercase mapping per char incl. 'İ'->'i̇', no final-sigma rule: 'Σ'->'σ' always). "
            "No strip, but spaces never reach a token. "
            "3) split: matches of <\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
            "[^\\s\\p{L}\\p{N}]+ are kept, everything between them (whitespace) dropped; each digit is its own "
            "piece. 4) each piece: UTF-8 bytes mapped through the GPT-2 byte->unicode table, '</w>' appended "
            "to the last symbol, BPE with merge ranks = line order of the merges. 5) bos 49406 + ids + eos "
            "49407; no padding, no truncation (model_max_length 77 is not applied here)." % ftfy_used),
        "vocab_size": len(tok),
        "bos_id": tok.bos_token_id,
        "eos_id": tok.eos_token_id,
        "pad_token_sd1": EOS,
        "open_clip_notes": (
            "open_clip_ids on a case = [49406] + open_clip SimpleTokenizer(clean='lower').encode(text) + "
            "[49407], present only where it differs from ids. open_clip differs only in its text clean-up: "
            "(a) ftfy.fix_text: curly quotes -> straight ('’s' -> 's), control characters and BOM removed, "
            "C1 controls read as windows-1252 (U+0085 -> '…'), fullwidth -> ASCII, ligatures ('ﬁ', 'ǅ') "
            "expanded, mojibake fixed; (b) html.unescape twice ('&amp;' -> '&', '&nbsp;' -> U+00A0); "
            "(c) whitespace = Python str.split(), which also splits on U+001C..U+001F; (d) str.lower(), "
            "final-sigma aware ('ΟΔΟΣ' -> 'οδος'; transformers gives 'οδοσ'); (e) its special-token "
            "spellings are '<start_of_text>'/'<end_of_text>' and '<|startoftext|>'/'<|endoftext|>' in the "
            "text are ordinary characters. With transformers' clean-up substituted (NFC, \\s+ -> ' ', "
            "per-character lower-case), open_clip's regex split, byte mapping and BPE give identical ids "
            "on every case (open_clip.cases_differing_with_transformers_normalization = 0)."),
        "open_clip": open_clip_info,
        "cases": cases,
        "decode": {
            "note": ("tokenizer.decode(ids, skip_special_tokens=...) of transformers 5: tokens joined, "
                     "byte symbols mapped back to bytes, UTF-8 decoded with invalid sequences -> U+FFFD, "
                     "'</w>' -> ' ', then the whole string stripped."),
            "cases": decode_cases,
        },
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    size = os.path.getsize(args.out)
    print("wrote %s: %d cases, %d decode cases, %d bytes; open_clip differs on %d cases "
          "(%d after normalization); ftfy used by transformers: %s"
          % (args.out, len(cases), len(decode_cases), size, n_diff_full, n_diff_core, ftfy_used))


if __name__ == "__main__":
    main()
