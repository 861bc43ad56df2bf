"""Chest-radiograph-like images in which every finding is a *local*, recognisable pattern.

Why this exists: tests, the demo and heat-map overlays need images where a label means something
visible at a known place. Each image is drawn as a "density" map (bright = dense: bone, heart,
fluid; dark = air: lungs), from randomly sized anatomy (body, lung fields with diaphragm domes,
mediastinum, heart, spine, ribs, clavicles, vessels), then each finding adds its own pattern at a
random place and scale inside the lungs, and finally exposure, gamma and noise vary per image.

Findings (the renderer's vocabulary, see ``FINDINGS``):
consolidation = patchy confluent opacity; pneumonia = one or more consolidation-like patches
(one box each); lung_opacity = a fainter patch; infiltration = several small faint patches;
effusion = dense fluid at a lung base with a meniscus (blunted costophrenic angle);
pneumothorax = lucent rim at the apex/lateral lung without vessel markings, with a thin pleural line;
cardiomegaly = enlarged heart; enlarged_cardiomediastinum = widened upper mediastinum;
nodule / mass = round (lobulated) densities; edema = bilateral perihilar haze with septal lines;
atelectasis = band / plate-like opacity with a raised hemidiaphragm; pleural_thickening = band
along the lateral chest wall; fracture = rib callus with a gap; support_devices = tubes, lines,
pacemaker; emphysema = large dark lungs, flat domes, bullae; fibrosis = basal reticulation;
hernia = retrocardiac bubble with an air-fluid level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from medpeft.data.synthetic.raster import (
    bbox,
    box_blur,
    ellipse_field,
    grid,
    sigmoid,
    smooth_noise,
    soft_ellipse,
)

FINDINGS: tuple[str, ...] = (
    "cardiomegaly",
    "enlarged_cardiomediastinum",
    "consolidation",
    "pneumonia",
    "lung_opacity",
    "infiltration",
    "nodule",
    "mass",
    "edema",
    "atelectasis",
    "effusion",
    "pneumothorax",
    "pleural_thickening",
    "fracture",
    "support_devices",
    "emphysema",
    "fibrosis",
    "hernia",
)


@dataclass(frozen=True)
class Region:
    """One drawn lesion: which finding, its pixel mask and its tight box ``(x, y, width, height)``."""

    finding: str
    mask: np.ndarray
    box: tuple[int, int, int, int]


@dataclass
class RenderedCxr:
    """A rendered radiograph (float32 in [0, 1], bright = dense) and where its findings are."""

    image: np.ndarray
    view: str
    findings: dict[str, float]
    regions: list[Region] = field(default_factory=list)

    def mask(self, finding: str) -> np.ndarray:
        """Union of the masks of all regions of ``finding`` (all False if it was not drawn)."""
        out = np.zeros(self.image.shape, dtype=bool)
        for region in self.regions:
            if region.finding == finding:
                out |= region.mask
        return out

    def boxes(self, finding: str | None = None) -> list[tuple[int, int, int, int]]:
        """Boxes of the regions of ``finding`` (of every finding when None)."""
        return [r.box for r in self.regions if finding is None or r.finding == finding]


@dataclass
class _Lung:
    side: int  # -1: image left (patient's right lung), +1: image right
    cx: float
    top: float
    base: float  # level of the costophrenic angle
    rx: float
    dome: float  # height of the diaphragm dome above the costophrenic angle


@dataclass
class _Anatomy:
    body_half_width: float
    lungs: list[_Lung]
    heart: tuple[float, float, float, float]  # cx, cy, rx, ry
    mediastinum_half_width: float
    lung_darkness: float
    vessel_amount: float
    rib_spacing: float
    rib_start: float


# ----------------------------------------------------------------------------- anatomy


def _sample_anatomy(rng: np.random.Generator, findings: Mapping[str, float]) -> _Anatomy:
    lungs = []
    base_shift = rng.uniform(-0.03, 0.03)
    for side in (-1, 1):
        lung = _Lung(
            side=side,
            cx=0.5 + side * rng.uniform(0.175, 0.205),
            top=rng.uniform(0.12, 0.16),
            base=0.78 + base_shift + rng.uniform(-0.015, 0.015) + (0.02 if side > 0 else 0.0),
            rx=rng.uniform(0.135, 0.155),
            dome=rng.uniform(0.07, 0.10),
        )
        lungs.append(lung)
    heart_rx = rng.uniform(0.125, 0.145)
    heart = [
        0.5 + rng.uniform(0.035, 0.055),
        rng.uniform(0.60, 0.64),
        heart_rx,
        heart_rx * rng.uniform(0.75, 0.85),
    ]
    k = findings.get("cardiomegaly", 0.0)
    if k:
        grow = 1.0 + k * rng.uniform(0.45, 0.6)
        heart = [
            heart[0] + 0.025 * k,
            heart[1] + 0.02 * k,
            heart[2] * grow,
            heart[3] * (1.0 + (grow - 1.0) * 0.6),
        ]
    mediastinum = rng.uniform(0.045, 0.06)
    k = findings.get("enlarged_cardiomediastinum", 0.0)
    if k:
        mediastinum *= 1.0 + k * rng.uniform(0.6, 0.9)
    darkness = rng.uniform(0.30, 0.36)
    vessels = rng.uniform(0.09, 0.13)
    k = findings.get("emphysema", 0.0)
    if k:
        for lung in lungs:
            lung.base += 0.05 * k
            lung.dome *= 1.0 - 0.7 * k
            lung.rx *= 1.0 + 0.06 * k
            lung.top -= 0.015 * k
        darkness += 0.07 * k
        vessels *= 1.0 - 0.5 * k
    return _Anatomy(
        body_half_width=rng.uniform(0.40, 0.46),
        lungs=lungs,
        heart=tuple(heart),  # type: ignore[arg-type]
        mediastinum_half_width=mediastinum,
        lung_darkness=darkness,
        vessel_amount=vessels,
        rib_spacing=rng.uniform(0.058, 0.066),
        rib_start=rng.uniform(0.07, 0.10),
    )


def _half_width(lung: _Lung, t: np.ndarray) -> np.ndarray:
    """Lung half-width at vertical fraction ``t``: a rounded apex, widest at the base."""
    apex = np.sqrt(np.clip(1.0 - (1.0 - np.minimum(t / 0.45, 1.0)) ** 2, 0.0, 1.0))
    return lung.rx * (0.82 + 0.18 * t) * np.maximum(apex, 0.05)


def _lung_coords(u: np.ndarray, v: np.ndarray, lung: _Lung) -> tuple[np.ndarray, np.ndarray]:
    """(lateral coordinate in about [-1, 1], 1 = lateral wall; vertical fraction apex->base)."""
    t = np.clip((v - lung.top) / (lung.base - lung.top), 0.0, 1.0)
    half = _half_width(lung, t)
    lat = lung.side * (u - lung.cx) / half
    return lat, t


def _lung_membership(u: np.ndarray, v: np.ndarray, lung: _Lung, edge: float) -> np.ndarray:
    t = np.clip((v - lung.top) / (lung.base - lung.top), 0.0, 1.0)
    half = _half_width(lung, t)
    inside_x = sigmoid((half - np.abs(u - lung.cx)) / edge)
    inside_top = sigmoid((v - lung.top) / edge)
    q = np.clip(((u - lung.cx + lung.side * 0.02) / (lung.rx * 1.15)) ** 2, 0.0, 1.0)
    dome_line = lung.base - lung.dome * (1.0 - q)
    inside_dome = sigmoid((dome_line - v) / edge)
    return inside_x * inside_top * inside_dome


def _draw_vessels(rng: np.random.Generator, anatomy: _Anatomy, height: int, width: int) -> np.ndarray:
    """Branching vessel markings from each hilum, drawn as tapering polylines."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    scale = max(height, width) / 256.0
    for lung in anatomy.lungs:
        hx = lung.cx - lung.side * lung.rx * 0.55
        hy = lung.top + 0.45 * (lung.base - lung.top)
        for _ in range(int(rng.integers(16, 24))):
            angle = rng.uniform(-2.6, 2.6) if lung.side > 0 else rng.uniform(-2.6, 2.6) + np.pi
            if lung.side > 0:
                angle = rng.uniform(-1.4, 1.4)
            else:
                angle = np.pi + rng.uniform(-1.4, 1.4)
            angle += rng.uniform(-0.3, 0.3)
            x, y = hx, hy
            w = rng.uniform(2.2, 3.2) * scale
            level = 230.0
            for _ in range(int(rng.integers(4, 8))):
                step = rng.uniform(0.025, 0.045)
                angle += rng.normal(0.0, 0.25)
                nx, ny = x + step * np.cos(angle), y + step * np.sin(angle) * 1.2
                draw.line(
                    [(x * width, y * height), (nx * width, ny * height)],
                    fill=int(level),
                    width=max(1, round(w)),
                )
                if rng.random() < 0.35:  # side branch
                    ba = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.9)
                    bx, by = nx + 0.6 * step * np.cos(ba), ny + 0.6 * step * np.sin(ba)
                    draw.line(
                        [(nx * width, ny * height), (bx * width, by * height)],
                        fill=int(level * 0.7),
                        width=max(1, round(w * 0.6)),
                    )
                x, y = nx, ny
                w *= 0.8
                level *= 0.85
    canvas = canvas.filter(ImageFilter.GaussianBlur(0.7 * scale))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _rib_offset(m: np.ndarray) -> np.ndarray:
    """Vertical course of a posterior rib vs distance from the midline: up from the spine, then down laterally."""
    return 0.03 - 0.12 * m + 2.4 * np.maximum(m - 0.18, 0.0) ** 2


def _ribs(u: np.ndarray, v: np.ndarray, anatomy: _Anatomy, edge: float) -> np.ndarray:
    """Posterior ribs (arcs from the spine curving down laterally) and fainter anterior ribs.

    All ribs share one centre-line shape shifted by the rib spacing, so they are drawn in one
    pass through the distance to the nearest rib (the fractional part of the rib "phase").
    """
    m = np.abs(u - 0.5)
    spacing = anatomy.rib_spacing
    lateral_limit = sigmoid((anatomy.body_half_width - 0.02 - m) / edge) * sigmoid((m - 0.035) / edge)
    phase = (v - anatomy.rib_start - _rib_offset(m)) / spacing
    nearest = np.clip(np.round(phase), 0, 9)
    d = np.abs(phase - nearest) * spacing
    thick = 0.0085 + 0.0006 * nearest
    posterior = sigmoid((thick - d) / edge) * 0.75 + np.exp(-(((d - thick) / (edge * 1.2)) ** 2)) * 0.35
    a_phase = (v - anatomy.rib_start - 0.16 - 0.32 * (0.42 - m)) / spacing
    a_nearest = np.clip(np.round(a_phase), 0, 9)
    a_d = np.abs(a_phase - a_nearest) * spacing
    anterior = 0.35 * sigmoid((0.007 - a_d) / edge) * sigmoid((m - 0.12) / edge)
    below = sigmoid((0.86 - v) / 0.03)  # ribs fade out over the upper abdomen
    return np.clip(posterior + anterior, 0.0, 1.3) * lateral_limit * below


# ----------------------------------------------------------------------------- findings


def _random_lung_point(
    rng: np.random.Generator,
    u: np.ndarray,
    v: np.ndarray,
    lungs: np.ndarray,
    heart: np.ndarray,
    zone: tuple[float, float] = (0.0, 1.0),
    side: int | None = None,
) -> tuple[float, float, int]:
    """A random point well inside a lung field (not behind the heart), in normalised coordinates."""
    height, width = lungs.shape[1:]
    for _ in range(200):
        s = int(rng.choice([-1, 1])) if side is None else side
        idx = 0 if s < 0 else 1
        px, py = int(rng.integers(0, width)), int(rng.integers(0, height))
        y_frac = py / height
        if lungs[idx, py, px] > 0.95 and heart[py, px] < 0.1 and zone[0] <= y_frac <= zone[1]:
            return float(u[0, px]), float(v[py, 0]), s
    # Fall back to the lung's centre of mass.
    idx = 0 if (side or -1) < 0 else 1
    ys, xs = np.nonzero(lungs[idx] > 0.5)
    return float(u[0, int(xs.mean())]), float(v[int(ys.mean()), 0]), (side or -1)


def _window(shape: tuple[int, ...], cx: float, cy: float, radius: float) -> tuple[slice, slice]:
    """Pixel slices of the square of half-size ``radius`` (normalised) around (cx, cy)."""
    height, width = shape[-2:]
    y0, y1 = int((cy - radius) * height), int(np.ceil((cy + radius) * height))
    x0, x1 = int((cx - radius) * width), int(np.ceil((cx + radius) * width))
    return slice(max(0, y0), min(height, y1)), slice(max(0, x0), min(width, x1))


def _patch(
    rng: np.random.Generator,
    u: np.ndarray,
    v: np.ndarray,
    cx: float,
    cy: float,
    size: float,
    lumps: int,
    threshold: float,
) -> np.ndarray:
    """Patchy, mottled opacity of about ``size`` radius around (cx, cy), values in [0, 1].

    Computed only in a window around the centre (the lumps are negligible beyond it).
    """
    out = np.zeros_like(u)
    ys, xs = _window(u.shape, cx, cy, size * 2.6)
    wu, wv = u[ys, xs], v[ys, xs]
    if wu.size == 0:
        return out
    acc = np.zeros_like(wu)
    for _ in range(lumps):
        ox, oy = rng.normal(0.0, size * 0.5, size=2)
        sx = size * rng.uniform(0.35, 0.7)
        sy = sx * rng.uniform(0.7, 1.4)
        acc += np.exp(-(((wu - cx - ox) / sx) ** 2 + ((wv - cy - oy) / sy) ** 2) / 2.0)
    acc /= max(float(acc.max()), 1e-6)
    h, w = wu.shape
    cells = max(h, w) / max(size * 0.35 * max(u.shape), 1.0)
    mottle = 1.0 + 0.25 * smooth_noise(rng, h, w, max(cells, 2.0))
    out[ys, xs] = np.clip((acc * mottle - threshold) / 0.45, 0.0, 1.0) ** 0.8
    return out


def _add_region(regions: list[Region], finding: str, mask: np.ndarray) -> None:
    box = bbox(mask)
    if box is not None:
        regions.append(Region(finding=finding, mask=mask, box=box))


def _render_findings(
    rng: np.random.Generator,
    findings: Mapping[str, float],
    anatomy: _Anatomy,
    u: np.ndarray,
    v: np.ndarray,
    lungs: np.ndarray,
    heart: np.ndarray,
    edge: float,
) -> tuple[np.ndarray, np.ndarray, list[Region]]:
    """Density to add, a factor on vessel markings (0 where they vanish) and the drawn regions."""
    height, width = u.shape
    density = np.zeros_like(u)
    vessel_factor = np.ones_like(u)
    regions: list[Region] = []
    lung_any = np.maximum(lungs[0], lungs[1])

    def patches(
        name: str, count: int, size: tuple[float, float], amp: float, lumps: tuple[int, int], thr: float
    ):
        used_sides: list[int] = []
        for i in range(count):
            side = None
            if count > 1 and i == 1 and used_sides:
                side = -used_sides[0] if rng.random() < 0.7 else used_sides[0]
            cx, cy, s = _random_lung_point(rng, u, v, lungs, heart, zone=(0.25, 0.8), side=side)
            used_sides.append(s)
            p = _patch(rng, u, v, cx, cy, rng.uniform(*size), int(rng.integers(*lumps)), thr)
            p = p * lungs[0 if s < 0 else 1]
            density[:] += amp * p
            vessel_factor[:] *= 1.0 - 0.5 * p
            _add_region(regions, name, p > 0.3)

    for name in FINDINGS:
        k = float(findings.get(name, 0.0))
        if k <= 0.0:
            continue
        if name == "consolidation":
            patches(name, 1 + int(rng.random() < 0.2), (0.05, 0.09), 0.36 * k, (4, 8), 0.3)
        elif name == "pneumonia":
            n = int(rng.choice([1, 2, 3, 4], p=[0.5, 0.4, 0.08, 0.02]))
            patches(name, n, (0.045, 0.085), 0.34 * k, (3, 7), 0.25)
        elif name == "lung_opacity":
            patches(name, 1, (0.04, 0.08), 0.24 * k, (3, 6), 0.3)
        elif name == "infiltration":
            patches(name, int(rng.integers(3, 6)), (0.025, 0.045), 0.2 * k, (2, 4), 0.3)
        elif name in ("nodule", "mass"):
            count = int(rng.integers(1, 4)) if name == "nodule" else 1
            for _ in range(count):
                cx, cy, s = _random_lung_point(rng, u, v, lungs, heart, zone=(0.15, 0.85))
                if name == "nodule":
                    r = rng.uniform(0.011, 0.02)
                    blob = soft_ellipse(u, v, cx, cy, r, r * rng.uniform(0.85, 1.15), edge)
                else:
                    r = rng.uniform(0.035, 0.06)
                    blob = soft_ellipse(
                        u, v, cx, cy, r, r * rng.uniform(0.8, 1.2), edge, rng.uniform(0, np.pi)
                    )
                    for _ in range(2):
                        ox, oy = rng.normal(0.0, r * 0.45, size=2)
                        blob = np.maximum(blob, soft_ellipse(u, v, cx + ox, cy + oy, r * 0.6, r * 0.6, edge))
                blob = blob * lungs[0 if s < 0 else 1]
                density += 0.36 * k * blob
                _add_region(regions, name, blob > 0.5)
        elif name == "edema":
            haze = np.zeros_like(u)
            for i, lung in enumerate(anatomy.lungs):
                hx = lung.cx - lung.side * lung.rx * 0.45
                hy = lung.top + 0.5 * (lung.base - lung.top)
                sx, sy = rng.uniform(0.09, 0.13), rng.uniform(0.14, 0.19)
                haze += np.exp(-(((u - hx) / sx) ** 2 + ((v - hy) / sy) ** 2) / 2.0) * lungs[i]
            texture = 1.0 + 0.3 * smooth_noise(rng, height, width, 30.0)
            haze = np.clip(haze * texture, 0.0, 1.2)
            septal = np.zeros_like(u)
            for lung_i, lung in enumerate(anatomy.lungs):  # Kerley B lines at the lateral bases
                for _ in range(int(rng.integers(3, 6))):
                    yy = lung.base - lung.dome * 0.2 - rng.uniform(0.02, 0.12)
                    xx = lung.cx + lung.side * lung.rx * rng.uniform(0.75, 0.95)
                    septal += soft_ellipse(u, v, xx, yy, 0.025, 0.003, edge) * lungs[lung_i]
            density += k * (0.25 * haze + 0.12 * np.clip(septal, 0, 1))
            vessel_factor *= 1.0 - 0.4 * np.clip(haze, 0, 1)
            _add_region(regions, name, (haze > 0.35) & (lung_any > 0.5))
        elif name == "atelectasis":
            for _ in range(1 + int(rng.random() < 0.3)):
                cx, cy, s = _random_lung_point(rng, u, v, lungs, heart, zone=(0.45, 0.78))
                length = rng.uniform(0.07, 0.13)
                thick = rng.uniform(0.012, 0.02)
                angle = rng.uniform(-0.35, 0.35)
                band = soft_ellipse(u, v, cx, cy, length, thick, edge, angle)
                band = band * lungs[0 if s < 0 else 1]
                density += 0.4 * k * band
                _add_region(regions, name, band > 0.5)
        elif name == "effusion":
            sides = [-1, 1] if rng.random() < 0.35 else [int(rng.choice([-1, 1]))]
            for s in sides:
                i = 0 if s < 0 else 1
                lung = anatomy.lungs[i]
                lat, _ = _lung_coords(u, v, lung)
                level = lung.base - rng.uniform(0.07, 0.17) * k
                top = level - 0.08 * np.clip(lat, 0.0, 1.0) ** 2
                fluid = sigmoid((v - top) / (edge * 3.0)) * lungs[i]
                density += 0.42 * fluid
                vessel_factor *= 1.0 - fluid
                _add_region(regions, name, fluid > 0.5)
        elif name == "pneumothorax":
            sides = [-1, 1] if rng.random() < 0.3 else [int(rng.choice([-1, 1]))]
            for s in sides:
                i = 0 if s < 0 else 1
                lung = anatomy.lungs[i]
                ax = lung.cx - lung.side * lung.rx * 0.5
                ay = lung.top + 0.5 * (lung.base - lung.top)
                f = rng.uniform(0.16, 0.42) * (0.6 + 0.4 * k)
                collapsed = _lung_membership(ax + (u - ax) / (1.0 - f), ay + (v - ay) / (1.0 - f), lung, edge)
                # Restrict to an apical-lateral window so it is a local rim, not the whole lung.
                direction = np.arctan2(v - ay, (u - ax) * lung.side)  # 0 = lateral, -pi/2 = up
                centre = rng.uniform(-1.5, -0.4)
                half = rng.uniform(0.6, 1.2)
                window = sigmoid((half - np.abs(direction - centre)) / 0.12)
                rim = lungs[i] * (1.0 - collapsed) * window
                density -= 0.15 * rim
                vessel_factor *= 1.0 - rim
                line = np.exp(-(((collapsed - 0.5) / 0.3) ** 2)) * window * lungs[i]
                density += 0.16 * line
                _add_region(regions, name, rim > 0.5)
        elif name == "cardiomegaly":
            _add_region(regions, name, heart > 0.5)
        elif name == "enlarged_cardiomediastinum":
            upper = (
                (np.abs(u - 0.5) < anatomy.mediastinum_half_width)
                & (v > 0.12)
                & (v < anatomy.heart[1] - anatomy.heart[3])
            )
            _add_region(regions, name, upper)
        elif name == "pleural_thickening":
            i = int(rng.integers(0, 2))
            lung = anatomy.lungs[i]
            lat, t = _lung_coords(u, v, lung)
            t0 = rng.uniform(0.2, 0.6)
            band = lungs[i] * sigmoid((lat - 0.8) / 0.04) * sigmoid((0.2 - np.abs(t - t0)) / 0.03)
            density += 0.3 * k * band
            _add_region(regions, name, band > 0.5)
        elif name == "fracture":
            lung = anatomy.lungs[int(rng.integers(0, 2))]
            j = int(rng.integers(3, 8))
            m = rng.uniform(0.25, 0.38)
            b = anatomy.rib_start + j * anatomy.rib_spacing
            cy = b + float(_rib_offset(np.float32(m)))
            cx = 0.5 + lung.side * m
            callus = soft_ellipse(u, v, cx, cy, 0.018, 0.014, edge)
            gap = soft_ellipse(u, v, cx, cy, 0.003, 0.014, edge * 0.5)
            density += 0.2 * k * callus - 0.15 * gap
            _add_region(regions, name, callus > 0.5)
        elif name == "support_devices":
            devices = _draw_devices(rng, anatomy, height, width)
            density += 0.55 * k * devices
            _add_region(regions, name, devices > 0.3)
        elif name == "emphysema":
            for _ in range(int(rng.integers(0, 3))):
                cx, cy, s = _random_lung_point(rng, u, v, lungs, heart, zone=(0.15, 0.45))
                r = rng.uniform(0.02, 0.04)
                ring = ellipse_field(u, v, cx, cy, r, r)
                density -= 0.06 * sigmoid((1.0 - ring) / 0.08) * lung_any
                density += 0.08 * np.exp(-(((ring - 1.0) / 0.08) ** 2)) * lung_any
            _add_region(regions, name, lung_any > 0.5)
        elif name == "fibrosis":
            net = np.abs(smooth_noise(rng, height, width, 40.0))
            lines = sigmoid((0.18 - net) / 0.05)
            weights = np.zeros_like(u)
            for i, lung in enumerate(anatomy.lungs):
                lat, t = _lung_coords(u, v, lung)
                weights += lungs[i] * sigmoid((t - 0.55) / 0.06) * sigmoid((lat + 0.1) / 0.1)
            density += 0.2 * k * lines * weights
            _add_region(regions, name, weights > 0.5)
        elif name == "hernia":
            cx = 0.5 + rng.uniform(-0.01, 0.04)
            cy = anatomy.heart[1] + rng.uniform(0.0, 0.04)
            r = rng.uniform(0.04, 0.06)
            bubble = soft_ellipse(u, v, cx, cy, r, r * 0.85, edge)
            air = bubble * sigmoid((cy - v) / edge)
            density += 0.08 * bubble - 0.28 * air
            _add_region(regions, name, bubble > 0.5)
    return density, vessel_factor, regions


def _draw_devices(rng: np.random.Generator, anatomy: _Anatomy, height: int, width: int) -> np.ndarray:
    """Tubes, lines and a pacemaker as thin bright (metal/contrast) structures."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    lw = max(1, round(max(height, width) / 160))

    def pt(x: float, y: float) -> tuple[float, float]:
        return x * width, y * height

    kinds = rng.choice(["ett", "line", "pacer", "ng"], size=int(rng.integers(1, 3)), replace=False)
    for kind in kinds:
        if kind == "ett":
            x = 0.5 + rng.uniform(-0.01, 0.01)
            end = rng.uniform(0.24, 0.32)
            draw.line([pt(x - 0.008, 0.0), pt(x - 0.008, end)], fill=255, width=lw)
            draw.line([pt(x + 0.008, 0.0), pt(x + 0.008, end)], fill=255, width=lw)
        elif kind == "ng":
            x = 0.5 + rng.uniform(-0.01, 0.01)
            pts = [pt(x, 0.0), pt(x + 0.01, 0.4), pt(x + 0.03, 0.75), pt(x + 0.12, 0.88)]
            draw.line(pts, fill=220, width=lw)
        elif kind == "line":
            s = int(rng.choice([-1, 1]))
            pts = [
                pt(0.5 + s * 0.36, 0.2),
                pt(0.5 + s * 0.2, 0.2),
                pt(0.5 + s * 0.06, 0.28),
                pt(0.5 + s * 0.02, 0.42),
            ]
            draw.line(pts, fill=235, width=lw)
        else:
            x, y = 0.5 + 0.27 * float(rng.choice([-1, 1])), rng.uniform(0.17, 0.24)
            draw.rounded_rectangle([pt(x - 0.04, y - 0.03), pt(x + 0.04, y + 0.03)], radius=3, fill=255)
            hx, hy, _, _ = anatomy.heart
            draw.line([pt(x, y), pt(0.5, 0.33), pt(hx, hy)], fill=240, width=lw)
    for _ in range(int(rng.integers(0, 4))):  # ECG electrodes
        x, y = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.5)
        r = 0.012
        draw.ellipse([pt(x - r, y - r), pt(x + r, y + r)], outline=200, width=lw)
    return np.asarray(canvas, dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------- images


def _exposure(rng: np.random.Generator, density: np.ndarray) -> np.ndarray:
    """Per-image exposure, contrast, gamma, vignetting and quantum noise."""
    height, width = density.shape
    u, v = grid(height, width)
    img = density + 0.025 * smooth_noise(rng, height, width, 6.0)
    img = img * (1.0 - rng.uniform(0.0, 0.12) * ((u - 0.5) ** 2 + (v - 0.5) ** 2) * 4.0)
    black, contrast, gamma = rng.uniform(-0.03, 0.05), rng.uniform(0.95, 1.3), rng.uniform(0.8, 1.25)
    img = np.clip((img - black) * contrast, 0.0, 1.0) ** gamma
    img = img + rng.normal(0.0, rng.uniform(0.006, 0.02), size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def render_frontal(
    rng: np.random.Generator, height: int, width: int, findings: Mapping[str, float]
) -> RenderedCxr:
    """Render a PA/AP chest radiograph with ``findings`` (finding name -> strength in (0, 1]).

    Strength below 1 draws a fainter version (used for uncertain labels). Unknown names raise
    ``ValueError`` so a typo in a label mapping cannot silently draw nothing.
    """
    unknown = set(findings) - set(FINDINGS)
    if unknown:
        raise ValueError(f"unknown findings {sorted(unknown)}; known: {', '.join(FINDINGS)}")
    active = {k: float(s) for k, s in findings.items() if s > 0}
    u, v = grid(height, width)
    edge = 1.2 / max(height, width)
    anatomy = _sample_anatomy(rng, active)
    if "atelectasis" in active:  # volume loss raises a hemidiaphragm
        anatomy.lungs[int(rng.integers(0, 2))].base -= 0.03 * active["atelectasis"]

    m = np.abs(u - 0.5)
    neck = 0.09 + (anatomy.body_half_width - 0.09) * np.clip((v - 0.03) / 0.15, 0.0, 1.0) ** 0.6
    body = sigmoid((neck - m) / (edge * 3))
    lungs = np.stack([_lung_membership(u, v, lung, edge) for lung in anatomy.lungs])
    hx, hy, hrx, hry = anatomy.heart
    heart = soft_ellipse(u, v, hx, hy, hrx, hry, edge * 2, angle=-0.25)
    aorta = soft_ellipse(u, v, 0.5 + anatomy.mediastinum_half_width * 0.6, 0.3, 0.035, 0.03, edge * 2)
    mediastinum = np.maximum(
        sigmoid((anatomy.mediastinum_half_width - m) / (edge * 2)) * sigmoid((v - 0.05) / edge), aorta
    )
    lung_any = np.maximum(lungs[0], lungs[1]) * (1.0 - np.maximum(heart, mediastinum))
    fields = lungs * (1.0 - np.maximum(heart, mediastinum))[None]  # visible lung per side

    density = 0.03 + 0.5 * body
    density = density - anatomy.lung_darkness * lung_any
    spine = sigmoid((0.035 - m) / edge) * (0.8 + 0.2 * np.cos(v * 2 * np.pi / anatomy.rib_spacing))
    density += 0.1 * spine * body
    trachea = sigmoid((0.012 - m) / edge) * sigmoid((0.33 - v) / edge) * sigmoid((v - 0.05) / edge)
    density -= 0.12 * trachea
    density += 0.05 * heart
    left_dome = anatomy.lungs[1]
    bubble = soft_ellipse(
        u, v, left_dome.cx + 0.02, left_dome.base - left_dome.dome + 0.06, 0.04, 0.025, edge * 2
    )
    density -= 0.12 * bubble * body
    for side in (-1, 1):  # clavicles
        centre = 0.17 - 0.18 * (m - 0.06)
        clav = (
            sigmoid((0.011 - np.abs(v - centre)) / edge)
            * sigmoid((m - 0.04) / edge)
            * sigmoid((0.33 - m) / edge)
        )
        density += 0.09 * clav * (np.sign(u - 0.5) == side)
    density += 0.075 * _ribs(u, v, anatomy, edge) * body

    extra, vessel_factor, regions = _render_findings(rng, active, anatomy, u, v, fields, heart, edge)
    vessels = _draw_vessels(rng, anatomy, height, width)
    density += anatomy.vessel_amount * vessels * lung_any * vessel_factor
    density += 0.04 * smooth_noise(rng, height, width, 60.0) * lung_any * 0.5
    density += extra
    return RenderedCxr(image=_exposure(rng, density), view="frontal", findings=active, regions=regions)


def render_lateral(
    rng: np.random.Generator, height: int, width: int, findings: Mapping[str, float]
) -> RenderedCxr:
    """Render a lateral chest radiograph (anterior to the left); findings are drawn coarsely.

    Lateral images exist in the raw layouts so that readers learn to drop them; their findings
    are approximate (fluid in the posterior sulcus, a larger heart, a patch in the lung field).
    """
    unknown = set(findings) - set(FINDINGS)
    if unknown:
        raise ValueError(f"unknown findings {sorted(unknown)}; known: {', '.join(FINDINGS)}")
    active = {k: float(s) for k, s in findings.items() if s > 0}
    u, v = grid(height, width)
    edge = 1.2 / max(height, width)
    body = soft_ellipse(u, v, 0.5, 0.55, rng.uniform(0.38, 0.44), 0.52, edge * 3)
    lung = soft_ellipse(
        u, v, 0.5, rng.uniform(0.45, 0.5), rng.uniform(0.27, 0.31), rng.uniform(0.3, 0.34), edge * 2
    )
    grow = 1.0 + 0.4 * active.get("cardiomegaly", 0.0)
    heart = soft_ellipse(u, v, 0.36, 0.66, 0.15 * grow, 0.13 * grow, edge * 2)
    density = 0.03 + 0.5 * body - 0.3 * lung * (1.0 - heart)
    spine_x = rng.uniform(0.76, 0.8)
    for j in range(12):
        vy = 0.12 + j * 0.065
        density += 0.14 * soft_ellipse(u, v, spine_x, vy, 0.045, 0.025, edge) * body
    density += 0.1 * sigmoid((0.008 - np.abs(u - 0.17 - 0.05 * v)) / edge) * sigmoid((v - 0.2) / edge) * body
    regions: list[Region] = []
    if active.get("effusion"):
        fluid = lung * sigmoid((v - 0.72) / (edge * 3)) * sigmoid((u - 0.5) / 0.05)
        density += 0.4 * fluid
        _add_region(regions, "effusion", fluid > 0.5)
    for name in ("consolidation", "pneumonia", "atelectasis", "lung_opacity", "mass"):
        if active.get(name):
            cx, cy = rng.uniform(0.35, 0.65), rng.uniform(0.3, 0.65)
            p = _patch(rng, u, v, cx, cy, 0.07, 4, 0.3) * lung
            density += 0.3 * p
            _add_region(regions, name, p > 0.3)
    if active.get("edema"):
        density += 0.15 * lung * (1.0 + 0.3 * smooth_noise(rng, height, width, 20.0))
    density += 0.03 * box_blur(rng.standard_normal((height, width)).astype(np.float32), 1) * lung
    return RenderedCxr(image=_exposure(rng, density), view="lateral", findings=active, regions=regions)
