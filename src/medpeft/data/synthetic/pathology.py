"""H&E-like histopathology tiles with class-specific tissue architecture (LC25000, MHIST).

Tiles are drawn as two stain-density maps, hematoxylin (nuclei, blue-purple) and eosin (cytoplasm
and stroma, pink), combined by the Beer-Lambert law with the Ruifrok-Johnston stain vectors, so
colour, stain intensity and texture vary like real slides while the class is carried by the
*architecture* a pathologist would use:

- lung_n: thin alveolar septa around large empty air spaces, sparse small nuclei;
- lung_aca: glands (acini) with a central lumen lined by crowded large nuclei, in pink stroma;
- lung_scc: solid nests of polygonal pink cells with large dark nuclei and keratin pearls;
- colon_n: regular round crypts with goblet-cell vacuoles and a neat basal row of small nuclei;
- colon_aca: irregular, fused, cribriform glands with stratified elongated nuclei and necrotic debris;
- MHIST HP: narrow straight crypts, serration (saw-tooth lumen) only in the upper part;
- MHIST SSA: dilated crypts serrated throughout, with horizontally spreading (boot/L-shaped) bases.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from medpeft.data.labels import LC25000_CLASSES, MHIST_CLASSES
from medpeft.data.synthetic.raster import smooth_noise

_HEMATOXYLIN = np.array([0.650, 0.704, 0.286], dtype=np.float32)
_EOSIN = np.array([0.072, 0.990, 0.105], dtype=np.float32)
_COS = np.cos(np.linspace(0.0, 2 * np.pi, 14, endpoint=False))  # polygon outline of a rotated ellipse
_SIN = np.sin(np.linspace(0.0, 2 * np.pi, 14, endpoint=False))


class _Canvas:
    """Two stain layers (hematoxylin, eosin) drawn with PIL at 0..255 density."""

    def __init__(self, size: int, eosin_background: int) -> None:
        self.size = size
        self.h = Image.new("L", (size, size), 0)
        self.e = Image.new("L", (size, size), eosin_background)
        self.dh = ImageDraw.Draw(self.h)
        self.de = ImageDraw.Draw(self.e)

    def ellipse(
        self, layer: str, cx: float, cy: float, rx: float, ry: float, value: int, angle: float = 0.0
    ) -> None:
        draw = self.dh if layer == "h" else self.de
        if angle == 0.0:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=value)
            return
        c, s = np.cos(angle), np.sin(angle)
        x = cx + rx * _COS * c - ry * _SIN * s
        y = cy + rx * _COS * s + ry * _SIN * c
        draw.polygon(np.stack([x, y], axis=1).ravel().tolist(), fill=value)

    def polygon(self, layer: str, pts: list[tuple[float, float]], value: int) -> None:
        (self.dh if layer == "h" else self.de).polygon(pts, fill=value)


def _star(
    cx: float, cy: float, rx: float, ry: float, teeth: int, depth: float, rng: np.random.Generator
) -> list:
    """Polygon of a serrated (saw-tooth) lumen outline."""
    t = np.linspace(0.0, 2 * np.pi, 2 * teeth, endpoint=False) + rng.uniform(0, np.pi)
    radius = np.where(np.arange(2 * teeth) % 2 == 0, 1.0, 1.0 - depth)
    radius = radius * rng.uniform(0.9, 1.1, size=radius.shape)
    return [(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for a, r in zip(t, radius, strict=True)]


def _nuclei(
    canvas: _Canvas,
    rng: np.random.Generator,
    pts: np.ndarray,
    r: float,
    value: tuple[int, int],
    elong: float = 1.0,
) -> None:
    for x, y in pts:
        rr = r * rng.uniform(0.75, 1.25)
        canvas.ellipse(
            "h", x, y, rr * elong, rr, int(rng.integers(*value)), angle=float(rng.uniform(0, np.pi))
        )


def _ring_points(
    cx: float, cy: float, rx: float, ry: float, count: int, rng: np.random.Generator, jitter: float
) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, count, endpoint=False) + rng.uniform(0, 2 * np.pi)
    x = cx + rx * np.cos(t) + rng.normal(0, jitter, count)
    y = cy + ry * np.sin(t) + rng.normal(0, jitter, count)
    return np.stack([x, y], axis=1)


def _scattered(
    canvas: _Canvas, rng: np.random.Generator, count: int, r: float, value: tuple[int, int]
) -> None:
    pts = rng.uniform(0, canvas.size, size=(count, 2))
    _nuclei(canvas, rng, pts, r, value)


def _lung_n(c: _Canvas, rng: np.random.Generator, s: float) -> None:
    # Air spaces on a jittered grid, so thin septa run between neighbouring alveoli.
    step = rng.uniform(0.15, 0.21) * c.size
    for gy in np.arange(-step / 2, c.size + step, step):
        for gx in np.arange(-step / 2, c.size + step, step):
            if rng.random() < 0.1:
                continue  # a collapsed alveolus leaves a patch of septal tissue
            cx, cy = gx + rng.normal(0, step * 0.12), gy + rng.normal(0, step * 0.12)
            r = step * rng.uniform(0.42, 0.56)
            c.ellipse("e", cx, cy, r, r * rng.uniform(0.75, 1.25), 0, angle=float(rng.uniform(0, np.pi)))
    e = np.asarray(c.e)
    pts = rng.uniform(0, c.size, size=(int(220 * s), 2))
    keep = e[np.clip(pts[:, 1].astype(int), 0, c.size - 1), np.clip(pts[:, 0].astype(int), 0, c.size - 1)] > 0
    _nuclei(c, rng, pts[keep][:60], 0.008 * c.size, (150, 210), elong=1.6)


def _lung_aca(c: _Canvas, rng: np.random.Generator, s: float) -> None:
    _scattered(c, rng, int(40 * s), 0.007 * c.size, (120, 180))
    for _ in range(int(rng.integers(5, 9))):
        cx, cy = rng.uniform(0, c.size, 2)
        r = rng.uniform(0.07, 0.13) * c.size
        ry = r * rng.uniform(0.7, 1.3)
        c.ellipse("e", cx, cy, r, ry, 150)
        c.ellipse("e", cx, cy, r * 0.45, ry * 0.45, 0)
        count = int(2 * np.pi * r / (0.022 * c.size))
        _nuclei(
            c,
            rng,
            _ring_points(cx, cy, r * 0.68, ry * 0.68, count, rng, 0.006 * c.size),
            0.017 * c.size,
            (190, 250),
            1.3,
        )


def _lung_scc(c: _Canvas, rng: np.random.Generator, s: float) -> None:
    for _ in range(int(rng.integers(3, 6))):
        cx, cy = rng.uniform(0, c.size, 2)
        r = rng.uniform(0.15, 0.28) * c.size
        c.ellipse("e", cx, cy, r, r * rng.uniform(0.7, 1.2), 200, angle=float(rng.uniform(0, np.pi)))
        pts = rng.normal(0, r * 0.5, size=(int(110 * s), 2)) + (cx, cy)
        _nuclei(c, rng, pts, 0.015 * c.size, (200, 255), elong=1.2)
        if rng.random() < 0.8:  # keratin pearl: concentric eosinophilic lamellae
            px, py = cx + rng.normal(0, r * 0.2), cy + rng.normal(0, r * 0.2)
            for k, rr in enumerate(np.linspace(0.09, 0.02, 5) * c.size):
                c.ellipse("e", px, py, rr, rr * 0.85, 255 if k % 2 == 0 else 170)
                c.ellipse("h", px, py, rr, rr * 0.85, 0)


def _crypt(
    c: _Canvas, rng: np.random.Generator, cx: float, cy: float, r: float, goblets: bool, nuc: tuple[int, int]
) -> None:
    c.ellipse("e", cx, cy, r, r, 90)
    if goblets:
        for gx, gy in _ring_points(cx, cy, r * 0.55, r * 0.55, int(rng.integers(8, 13)), rng, r * 0.05):
            c.ellipse("e", gx, gy, r * 0.16, r * 0.2, 8)
    c.ellipse("e", cx, cy, r * 0.25, r * 0.25, 0)
    count = int(2 * np.pi * r / (0.016 * c.size))
    _nuclei(c, rng, _ring_points(cx, cy, r * 0.9, r * 0.9, count, rng, r * 0.02), 0.01 * c.size, nuc, 1.4)


def _colon_n(c: _Canvas, rng: np.random.Generator, s: float) -> None:
    _scattered(c, rng, int(90 * s), 0.008 * c.size, (110, 170))  # lamina propria lymphocytes
    step = rng.uniform(0.2, 0.26) * c.size
    for gy in np.arange(-step / 2, c.size + step, step):
        for gx in np.arange(-step / 2, c.size + step, step):
            x, y = gx + rng.normal(0, step * 0.06), gy + rng.normal(0, step * 0.06)
            _crypt(c, rng, x, y, step * rng.uniform(0.36, 0.42), goblets=True, nuc=(100, 160))


def _colon_aca(c: _Canvas, rng: np.random.Generator, s: float) -> None:
    for _ in range(int(rng.integers(4, 7))):
        cx, cy = rng.uniform(0, c.size, 2)
        r = rng.uniform(0.12, 0.22) * c.size
        outline = _star(cx, cy, r, r * rng.uniform(0.6, 1.2), int(rng.integers(5, 9)), 0.35, rng)
        c.polygon("e", outline, 160)
        pts = np.array(outline)
        for _ in range(3):  # stratified, crowded, elongated nuclei along the irregular outline
            shrink = rng.uniform(0.7, 0.95)
            ring = (pts - (cx, cy)) * shrink + (cx, cy)
            dense = np.concatenate([ring + rng.normal(0, 0.01 * c.size, ring.shape) for _ in range(4)])
            _nuclei(c, rng, dense, 0.014 * c.size, (200, 255), elong=2.0)
        for _ in range(int(rng.integers(2, 5))):  # cribriform lumens with necrotic debris
            lx, ly = cx + rng.normal(0, r * 0.25), cy + rng.normal(0, r * 0.25)
            lr = r * rng.uniform(0.1, 0.2)
            c.ellipse("e", lx, ly, lr, lr, 40)
            c.ellipse("h", lx, ly, lr, lr, 0)
            _nuclei(c, rng, rng.normal(0, lr * 0.4, size=(4, 2)) + (lx, ly), 0.004 * c.size, (180, 255))


def _mhist(c: _Canvas, rng: np.random.Generator, s: float, ssa: bool) -> None:
    _scattered(c, rng, int(70 * s), 0.009 * c.size, (140, 210))
    count = int(rng.integers(3, 5))
    xs = (np.arange(count) + 0.5) / count * c.size + rng.normal(0, 0.03 * c.size, count)
    for x in xs:
        width = (rng.uniform(0.07, 0.1) if not ssa else rng.uniform(0.11, 0.15)) * c.size
        top, bottom = rng.uniform(-0.1, 0.05) * c.size, rng.uniform(0.8, 1.0) * c.size
        cy, ry = (top + bottom) / 2, (bottom - top) / 2
        c.ellipse("e", x, cy, width, ry, 110)
        serrated_to = bottom if ssa else top + 0.45 * (bottom - top)
        # Lumen: a serrated upper part; HP narrows at the base, SSA stays dilated and turns sideways.
        for y in np.arange(top, bottom, 0.06 * c.size):
            lr = width * (0.55 if ssa else (0.45 if y < serrated_to else 0.18))
            if y < serrated_to:
                c.polygon("e", _star(x, y, lr, 0.04 * c.size, 6, 0.45, rng), 10)
            else:
                c.ellipse("e", x, y, lr, 0.035 * c.size, 10)
        if ssa:
            side = float(rng.choice([-1.0, 1.0]))
            c.ellipse("e", x + side * width * 0.9, bottom - 0.05 * c.size, width * 1.1, 0.06 * c.size, 110)
            c.polygon(
                "e",
                _star(
                    x + side * width * 0.9, bottom - 0.05 * c.size, width * 0.9, 0.04 * c.size, 7, 0.4, rng
                ),
                10,
            )
        n_side = int(2 * ry / (0.018 * c.size))
        for sign in (-1.0, 1.0):
            ys = np.linspace(top, bottom, n_side)
            pts = np.stack([x + sign * width * 0.85 + rng.normal(0, 0.004 * c.size, n_side), ys], axis=1)
            _nuclei(c, rng, pts, 0.01 * c.size, (170, 235), elong=1.6)


def _compose(c: _Canvas, rng: np.random.Generator, blur: float) -> np.ndarray:
    """Blur the stain layers a little, add texture, and convert to RGB by Beer-Lambert."""
    size = c.size
    h = np.asarray(c.h.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255.0
    e = np.asarray(c.e.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255.0
    e = e * (1.0 + 0.25 * smooth_noise(rng, size, size, 25.0)) + 0.04 * np.abs(
        smooth_noise(rng, size, size, 60.0)
    )
    h_strength = rng.uniform(1.1, 1.7)
    e_strength = rng.uniform(0.5, 0.9)
    od = h[..., None] * h_strength * _HEMATOXYLIN + np.clip(e, 0, None)[..., None] * e_strength * _EOSIN
    background = np.array(
        [rng.uniform(235, 250), rng.uniform(230, 245), rng.uniform(235, 250)], dtype=np.float32
    )
    rgb = background * np.exp(-od)
    rgb += rng.normal(0.0, 3.0, size=rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render_lc25000(rng: np.random.Generator, klass: str, size: int) -> np.ndarray:
    """An RGB uint8 tile (size x size) of LC25000 class ``klass`` (e.g. "lung_aca")."""
    if klass not in LC25000_CLASSES:
        raise ValueError(f"unknown LC25000 class {klass!r}; known: {', '.join(LC25000_CLASSES)}")
    s = (size / 256.0) ** 2
    c = _Canvas(size, eosin_background=int(rng.integers(70, 110)))
    {
        "lung_n": _lung_n,
        "lung_aca": _lung_aca,
        "lung_scc": _lung_scc,
        "colon_n": _colon_n,
        "colon_aca": _colon_aca,
    }[klass](c, rng, s)
    return _compose(c, rng, blur=0.6 * size / 256.0)


def render_mhist(rng: np.random.Generator, label: str, size: int) -> np.ndarray:
    """An RGB uint8 tile of a colorectal polyp: ``label`` "HP" (hyperplastic) or "SSA" (sessile serrated)."""
    if label not in MHIST_CLASSES:
        raise ValueError(f"unknown MHIST label {label!r}; known: {', '.join(MHIST_CLASSES)}")
    c = _Canvas(size, eosin_background=int(rng.integers(60, 100)))
    _mhist(c, rng, (size / 224.0) ** 2, ssa=label == "SSA")
    return _compose(c, rng, blur=0.5 * size / 224.0)
