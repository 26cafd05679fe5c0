"""Procedural training data for the demo model: one coloured shape on a background, with a caption.

    "a small red circle in the top left on a white background"
    "a large blue star"

Shapes: circle, square, triangle, star, ring, cross. Colours (shape and coloured backgrounds):
the 8 in COLOURS. Backgrounds: white, black, one of the colours, or a gradient between two
colours. Sizes: small or large (a medium size when the caption does not say). Positions: a 3x3
grid ("in the top left", "at the top", ..., "in the center", ...); anywhere when the caption
does not say. Each phrase after the shape is left out of some captions, so the model learns
what an unnamed attribute looks like on average and short prompts work.

Images are drawn at 4x the size and averaged down (anti-aliased edges); everything is numpy,
deterministic for a given numpy Generator.
"""

import numpy as np

SIZE = 64
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")

# Saturated, well separated hues, so a test can tell them apart by hue alone.
COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 30),
    "green": (30, 170, 50),
    "cyan": (30, 200, 215),
    "blue": (35, 65, 225),
    "purple": (135, 45, 190),
    "pink": (250, 110, 185),
}

# Grid cells: phrase -> (column, row) in 0..2.
POSITIONS = {
    "in the top left": (0, 0), "at the top": (1, 0), "in the top right": (2, 0),
    "on the left": (0, 1), "in the center": (1, 1), "on the right": (2, 1),
    "in the bottom left": (0, 2), "at the bottom": (1, 2), "in the bottom right": (2, 2),
}

# Radius of the shape's circumscribed circle, in pixels of the 64x64 image.
RADIUS = {"small": 9.0, "medium": 13.0, "large": 19.0}

BACKGROUNDS = ("white", "black", "colour", "gradient")
BACKGROUND_P = (0.4, 0.2, 0.2, 0.2)

# How often a caption names each optional attribute.
P_SIZE, P_POSITION, P_BACKGROUND = 0.75, 0.75, 0.75


def _star_polygon(points=5, inner=0.45):
    angles = np.arange(2 * points) * np.pi / points - np.pi / 2   # first point straight up
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


STAR = _star_polygon()
TRIANGLE = np.array([[np.cos(a), np.sin(a)] for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)])


def _inside_polygon(x, y, poly):
    """Even-odd rule, vectorised over the points (x, y)."""
    inside = np.zeros(x.shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return inside


def shape_mask(shape, cx, cy, r, size=SIZE, supersample=SUPERSAMPLE):
    """Coverage in [0, 1] of a shape centred at (cx, cy) with circumradius r (pixel units)."""
    n = size * supersample
    coords = (np.arange(n) + 0.5) / supersample
    x, y = np.meshgrid(coords, coords)
    u, v = (x - cx) / r, (y - cy) / r           # unit coordinates, y down
    if shape == "circle":
        m = u * u + v * v <= 1.0
    elif shape == "square":
        m = np.maximum(np.abs(u), np.abs(v)) <= 0.8
    elif shape == "triangle":
        m = _inside_polygon(u, v - 0.25, TRIANGLE)    # centred on its bounding box, not its centroid
    elif shape == "star":
        m = _inside_polygon(u, v - 0.1, STAR)
    elif shape == "ring":
        d = u * u + v * v
        m = (d <= 1.0) & (d >= 0.55 ** 2)
    elif shape == "cross":
        au, av = np.abs(u), np.abs(v)
        m = ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    else:
        raise ValueError(shape)
    return m.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def _jitter(rng, rgb, amount=12):
    return np.clip(np.asarray(rgb, dtype=np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def sample(rng):
    """One random (image uint8 [64,64,3], caption, attributes dict)."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    size = ("small", "large")[rng.integers(2)]
    say_size = rng.random() < P_SIZE
    if not say_size:
        size = ("small", "medium", "large")[rng.integers(3)]
    r = RADIUS[size] * rng.uniform(0.9, 1.1)
    say_position = rng.random() < P_POSITION
    position = list(POSITIONS)[rng.integers(len(POSITIONS))]
    margin = r + 2
    if say_position:
        col, row = POSITIONS[position]
        lo, hi = margin, SIZE - margin
        cx = lo + (hi - lo) * col / 2 + rng.uniform(-2, 2)
        cy = lo + (hi - lo) * row / 2 + rng.uniform(-2, 2)
    else:
        cx, cy = rng.uniform(margin, SIZE - margin, 2)

    background = BACKGROUNDS[rng.choice(len(BACKGROUNDS), p=BACKGROUND_P)]
    say_background = rng.random() < P_BACKGROUND
    others = [c for c in COLOURS if c != colour]
    if background == "white":
        bg = np.broadcast_to(_jitter(rng, (255, 255, 255), 6), (SIZE, SIZE, 3))
        bg_phrase = "on a white background"
    elif background == "black":
        bg = np.broadcast_to(_jitter(rng, (0, 0, 0), 6), (SIZE, SIZE, 3))
        bg_phrase = "on a black background"
    elif background == "colour":
        name = others[rng.integers(len(others))]
        bg = np.broadcast_to(_jitter(rng, COLOURS[name]), (SIZE, SIZE, 3))
        bg_phrase = f"on {'an' if name[0] in 'aeiou' else 'a'} {name} background"
    else:
        a, b = rng.choice(len(others), 2, replace=False)
        angle = rng.uniform(0, 2 * np.pi)
        t = np.linspace(-1, 1, SIZE)
        xx, yy = np.meshgrid(t, t)
        w = np.clip(0.5 + 0.5 * (xx * np.cos(angle) + yy * np.sin(angle)), 0, 1)[..., None]
        bg = (1 - w) * _jitter(rng, COLOURS[others[a]]) + w * _jitter(rng, COLOURS[others[b]])
        bg_phrase = "on a gradient background"

    cover = shape_mask(shape, cx, cy, r)[..., None]
    image = (1 - cover) * bg + cover * _jitter(rng, COLOURS[colour])
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    words = []
    if say_size:
        words.append(size)
    words += [colour, shape]
    if say_position:
        words.append(position)
    if say_background:
        words.append(bg_phrase)
    words[0] = ("an " if words[0][0] in "aeiou" else "a ") + words[0]
    caption = " ".join(words)
    return image, caption, dict(shape=shape, colour=colour, size=size, cx=cx, cy=cy, r=r, background=background)


def make_dataset(n, seed):
    """n images (uint8 [n,64,64,3]) and their captions, reproducible from seed."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    captions = []
    for i in range(n):
        images[i], caption, _ = sample(rng)
        captions.append(caption)
    return images, captions


def vocabulary():
    """Every word a caption can use (the tokens the text encoder is trained on)."""
    words = {"a", "an", "small", "large", "background", "on", "white", "black", "gradient"}
    words |= set(SHAPES) | set(COLOURS)
    for phrase in POSITIONS:
        words |= set(phrase.split())
    return sorted(words)


if __name__ == "__main__":
    # Preview: a grid of samples and their captions.
    import sys
    from PIL import Image
    images, captions = make_dataset(64, 0)
    grid = images.reshape(8, 8, SIZE, SIZE, 3).transpose(0, 2, 1, 3, 4).reshape(8 * SIZE, 8 * SIZE, 3)
    Image.fromarray(grid).save(sys.argv[1] if len(sys.argv) > 1 else "shapes-preview.png")
    print("\n".join(captions[:16]))
