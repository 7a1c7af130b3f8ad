"""The example pictures of the landing and pricing pages, drawn by nproxy's own code.

No third-party image may appear on the site, so the examples are made here with Pillow and
shipped as files in ``static/examples/``. Run ``python -m nproxy_core.site.examples`` to draw
them again after a change; the drawing is deterministic, so the files only change with it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 512
FOLDER = Path(__file__).resolve().parents[1] / "static" / "examples"

Drawing = Callable[[], Image.Image]


def _gradient(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE))
    draw = ImageDraw.Draw(image)
    for y in range(SIZE):
        t = y / (SIZE - 1)
        draw.line(
            [(0, y), (SIZE, y)],
            fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    return image


def lighthouse() -> Image.Image:
    """A lighthouse on a cliff at dusk."""
    image = _gradient((38, 28, 84), (247, 146, 86))
    draw = ImageDraw.Draw(image)
    draw.ellipse((300, 250, 420, 370), fill=(255, 214, 120))
    for i, colour in enumerate(((34, 52, 92), (27, 40, 72), (20, 30, 54))):
        y = 360 + i * 40
        draw.polygon(
            [
                (0, SIZE),
                (0, y),
                *((x, y + 14 * math.sin(x / 37 + i)) for x in range(0, SIZE + 1, 16)),
                (SIZE, SIZE),
            ],
            fill=colour,
        )
    draw.polygon([(0, 300), (210, 330), (250, SIZE), (0, SIZE)], fill=(22, 20, 32))
    draw.polygon([(110, 150), (150, 150), (160, 320), (100, 320)], fill=(236, 236, 240))
    for y in (190, 240, 290):
        draw.rectangle((100, y, 160, y + 16), fill=(200, 48, 48))
    draw.rectangle((104, 120, 156, 150), fill=(40, 40, 52))
    draw.polygon([(100, 120), (130, 92), (160, 120)], fill=(200, 48, 48))
    draw.polygon([(130, 135), (SIZE, 60), (SIZE, 170)], fill=(255, 236, 170))
    return image.filter(ImageFilter.GaussianBlur(0.6))


def garden() -> Image.Image:
    """A watercolour garden of round flowers."""
    rng = random.Random(7)
    image = _gradient((214, 236, 214), (120, 176, 120))
    layer = Image.new("RGBA", (SIZE, SIZE))
    draw = ImageDraw.Draw(layer)
    palette = [(236, 94, 122), (250, 190, 70), (150, 110, 220), (250, 140, 80), (255, 255, 255)]
    for _ in range(70):
        x, y, r = rng.randrange(SIZE), rng.randrange(140, SIZE), rng.randrange(14, 40)
        colour = rng.choice(palette)
        draw.line([(x, y), (x + rng.randrange(-10, 10), SIZE)], fill=(60, 120, 60, 200), width=3)
        for k in range(6):
            angle = k * math.pi / 3
            px, py = x + r * 0.6 * math.cos(angle), y + r * 0.6 * math.sin(angle)
            draw.ellipse((px - r / 2, py - r / 2, px + r / 2, py + r / 2), fill=(*colour, 170))
        draw.ellipse((x - r / 4, y - r / 4, x + r / 4, y + r / 4), fill=(250, 220, 90, 255))
    image.paste(layer.filter(ImageFilter.GaussianBlur(1.2)), (0, 0), layer)
    return image


def city() -> Image.Image:
    """A neon city at night, seen from the street."""
    rng = random.Random(3)
    image = _gradient((10, 8, 30), (60, 20, 90))
    draw = ImageDraw.Draw(image)
    x = 0
    while x < SIZE:
        width, height = rng.randrange(40, 90), rng.randrange(160, 420)
        shade = rng.randrange(18, 40)
        draw.rectangle((x, SIZE - height, x + width, SIZE), fill=(shade, shade, shade + 20))
        for wy in range(SIZE - height + 12, SIZE - 20, 18):
            for wx in range(x + 8, x + width - 8, 14):
                if rng.random() < 0.45:
                    draw.rectangle(
                        (wx, wy, wx + 6, wy + 9),
                        fill=rng.choice([(255, 214, 120), (120, 220, 255), (255, 110, 200)]),
                    )
        x += width + rng.randrange(2, 8)
    glow = Image.new("RGB", (SIZE, SIZE))
    ImageDraw.Draw(glow).rectangle((0, 440, SIZE, SIZE), fill=(255, 60, 160))
    return Image.blend(image, glow.filter(ImageFilter.GaussianBlur(30)), 0.25)


#: File name in static/examples/ -> what draws it (the pages' captions: billing.presenters).
DRAWINGS: dict[str, Drawing] = {
    "lighthouse.webp": lighthouse,
    "garden.webp": garden,
    "city.webp": city,
}


def draw_all(folder: Path = FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, drawing in DRAWINGS.items():
        path = folder / name
        drawing().save(path, format="WEBP", quality=82, method=6)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in draw_all():
        print(path)
