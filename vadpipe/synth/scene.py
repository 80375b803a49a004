"""Scene layout and static background of one synthetic surveillance clip.

A fixed, slightly oblique camera looks down on: a plaza at the top, a
sidewalk, a two-lane road (two-way or one-way), a sidewalk, a plaza at the
bottom; a footpath crosses everything at a zebra crossing and a restricted
zone with hatched borders sits in one plaza. Positions are pixels; sizes are
chosen in metres and converted with ``ppm`` (pixels per metre for horizontal
and upright sizes) and ``k`` (the ground-depth foreshortening: one metre of
ground along the view is ``ppm * k`` pixels tall).

Everything an event needs (zone, crossing, focus) lies inside ``focus``: the
central square of the frame, the part a centre crop of a 16:9 frame keeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import draw


@dataclass(frozen=True)
class Rect:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def w(self) -> float:
        return self.x1 - self.x0

    @property
    def h(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> Tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def contains(self, x, y):
        """Works on scalars and numpy arrays alike."""
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)

    def inflate(self, dx: float, dy: float) -> "Rect":
        return Rect(self.x0 - dx, self.y0 - dy, self.x1 + dx, self.y1 + dy)

    def clip(self, other: "Rect") -> "Rect":
        return Rect(max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1))

    def hits_segment(self, ax: float, ay: float, bx: float, by: float) -> bool:
        """Whether segment a-b touches the rectangle (sampled densely enough for walking paths)."""
        n = int(max(abs(bx - ax), abs(by - ay)) / 2) + 2
        t = np.linspace(0.0, 1.0, n)
        return bool(np.any(self.contains(ax + t * (bx - ax), ay + t * (by - ay))))

    def as_list(self) -> List[int]:
        return [int(round(v)) for v in (self.x0, self.y0, self.x1, self.y1)]


@dataclass(frozen=True)
class Lane:
    y: float          # centre row, px
    half: float       # half width, px
    direction: int    # +1: traffic moves right, -1: left
    speed: float      # desired traffic speed, m/s


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    ppm: float                      # px per metre, horizontal and upright
    k: float                        # ground-depth foreshortening
    road: Rect
    lanes: Tuple[Lane, ...]
    two_way: bool
    sidewalks: Tuple[Rect, Rect]    # top, bottom
    plazas: Tuple[Rect, Rect]       # top, bottom
    crossing: Rect                  # the footpath strip, full height
    zebra: Rect                     # crossing x road
    zone: Rect                      # restricted zone on the ground
    zone_plaza: int                 # 0 top, 1 bottom
    focus: Rect                     # central square where events happen
    trees: Tuple[Tuple[float, float, float], ...] = ()   # (x, y, radius px)
    benches: Tuple[Rect, ...] = ()
    sun: Tuple[float, float] = (0.3, 0.15)               # shadow offset per px of height

    def mx(self, metres: float) -> float:
        return metres * self.ppm

    def my(self, metres: float) -> float:
        return metres * self.ppm * self.k

    def metres(self, dx, dy):
        """Ground distance in metres of a pixel displacement (arrays allowed)."""
        return np.hypot(np.asarray(dx) / self.ppm, np.asarray(dy) / (self.ppm * self.k))

    def obstacles(self) -> List[Rect]:
        """Ground areas pedestrians walk around: the zone (with a margin), trees, benches."""
        out = [self.zone.inflate(self.mx(0.8), self.my(0.8))]
        out += [Rect(x - r, y - r * 0.6, x + r, y + r * 0.6) for x, y, r in self.trees]
        out += list(self.benches)
        return out

    def to_dict(self) -> dict:
        return {
            "ppm": round(self.ppm, 3), "k": round(self.k, 3), "two_way": self.two_way,
            "road": self.road.as_list(), "lanes": [{"y": round(l.y, 1), "direction": l.direction,
                                                     "speed_mps": round(l.speed, 2)} for l in self.lanes],
            "zone": self.zone.as_list(), "crossing": self.crossing.as_list(), "focus": self.focus.as_list(),
            "trees": len(self.trees), "benches": len(self.benches),
        }


def _focus(width: int, height: int) -> Rect:
    side = min(width, height)
    x0 = (width - side) / 2
    return Rect(x0 + 0.04 * side, 0.0, x0 + 0.96 * side, float(height))


def make_layout(rng: np.random.Generator, width: int, height: int) -> Layout:
    """Random but plausible street layout (camera distance, tilt, road position, zone, decorations).

    The picture always holds the zone, the sidewalk next to it, both lanes and a strip of the far
    sidewalk; the camera is as close as that allows (people are 13-18 % of the picture height), so
    the far plaza is often out of view.
    """
    k = rng.uniform(0.5, 0.7)
    lane_m, sw_near_m, sw_far_m = rng.uniform(3.0, 3.6), rng.uniform(2.4, 3.6), rng.uniform(2.4, 3.6)
    zone_w_m, zone_d_m = rng.uniform(4.0, 6.5), rng.uniform(2.8, 4.0)
    edge_m, gap_m = rng.uniform(0.8, 1.5), rng.uniform(0.8, 1.6)     # zone to picture edge / to sidewalk
    need_m = edge_m + zone_d_m + gap_m + sw_near_m + 2 * lane_m + 1.0
    ppm = height / max(rng.uniform(9.5, 13.0), need_m * k)          # zoom out only as far as needed
    mx, my = (lambda m: m * ppm), (lambda m: m * ppm * k)
    edge_m += rng.uniform(0.0, 0.4) * (height / (ppm * k) - need_m)  # some spare ground on the zone side
    zone_plaza = int(rng.integers(2))
    lane_w = my(lane_m)
    # lay the stack out from the zone's picture edge inwards; flip it when the zone is at the bottom
    y = {"zone0": my(edge_m)}
    y["zone1"] = y["zone0"] + my(zone_d_m)
    y["near0"] = y["zone1"] + my(gap_m)
    y["road0"] = y["near0"] + my(sw_near_m)
    y["road1"] = y["road0"] + 2 * lane_w
    y["far1"] = y["road1"] + my(sw_far_m)
    if zone_plaza == 1:
        y = {key: height - v for key, v in y.items()}

    def rows(a: str, b: str) -> Rect:
        return Rect(0, min(y[a], y[b]), width, max(y[a], y[b]))

    z0, z1 = rows("zone0", "zone1").y0, rows("zone0", "zone1").y1
    road, near, far = rows("road0", "road1"), rows("near0", "road0"), rows("road1", "far1")
    sidewalks = (near, far) if zone_plaza == 0 else (far, near)
    plazas = (Rect(0, 0, width, sidewalks[0].y0), Rect(0, sidewalks[1].y1, width, height))
    zone_w = mx(zone_w_m)

    two_way = bool(rng.random() < 0.7)
    speed = rng.uniform(7.0, 11.0)
    if two_way:
        top_dir = -1 if rng.random() < 0.75 else 1     # mostly right-hand traffic: top lane goes left
        dirs = (top_dir, -top_dir)
    else:
        d = 1 if rng.random() < 0.5 else -1
        dirs = (d, d)
    lanes = tuple(Lane(road.y0 + lane_w * (i + 0.5), lane_w / 2, dirs[i], speed * rng.uniform(0.9, 1.1))
                  for i in range(2))

    focus = _focus(width, height)
    cross_w = mx(rng.uniform(2.5, 3.5))
    gap = mx(rng.uniform(1.2, 2.5))
    slack = focus.w - cross_w - gap - zone_w              # < 0: the pair overhangs the focus evenly
    a = rng.uniform(0.15, 0.85) * slack if slack > 0 else slack / 2
    if rng.random() < 0.5:                      # crossing left of the zone
        cx0 = focus.x0 + a
        zx0 = cx0 + cross_w + gap
    else:
        zx0 = focus.x0 + a
        cx0 = zx0 + zone_w + gap
    crossing = Rect(cx0, 0, cx0 + cross_w, height)
    zebra = Rect(cx0, road.y0, cx0 + cross_w, road.y1)
    zone = Rect(zx0, z0, zx0 + zone_w, z1)

    keep_out = [crossing.inflate(mx(1.0), 0), zone.inflate(mx(1.5), my(1.5))]
    trees = []
    for _ in range(int(rng.integers(1, 6))):
        p = plazas[int(rng.integers(2))]
        r = mx(rng.uniform(1.1, 2.0))
        if p.h < 2 * r * 0.6 + my(1.0):
            continue
        x, y = rng.uniform(r, width - r), rng.uniform(p.y0 + r * 0.6, p.y1 - r * 0.6)
        box = Rect(x - r, y - r * 0.6, x + r, y + r * 0.6)
        if not any(_overlaps(box, o) for o in keep_out):
            trees.append((x, y, r))
            keep_out.append(box.inflate(mx(0.5), my(0.5)))
    benches = []
    for _ in range(int(rng.integers(0, 4))):
        side = int(rng.integers(2))
        bw, bd = mx(1.8), my(0.6)
        x = rng.uniform(0, width - bw)
        y = sidewalks[0].y0 - bd - my(0.2) if side == 0 else sidewalks[1].y1 + my(0.2)
        box = Rect(x, y, x + bw, y + bd)
        if box.y0 > 0 and box.y1 < height and not any(_overlaps(box, o) for o in keep_out):
            benches.append(box)
            keep_out.append(box.inflate(mx(0.5), 0))
    sun = (rng.uniform(-0.5, 0.5), rng.uniform(0.05, 0.25))
    return Layout(width, height, ppm, k, road, lanes, two_way, sidewalks, plazas, crossing, zebra, zone,
                  zone_plaza, focus, tuple(trees), tuple(benches), sun)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# --- palette -------------------------------------------------------------------
_GRASS = ((70, 110, 50), (90, 120, 60), (100, 115, 70), (60, 95, 55))
_PAVING = ((150, 145, 135), (170, 160, 140), (130, 130, 130), (165, 150, 125))
_ZONE = (((235, 200, 40), (30, 30, 30)), ((220, 50, 40), (235, 235, 235)), ((240, 140, 30), (40, 40, 40)))


@dataclass
class Palette:
    plazas: Tuple[Tuple[str, Tuple[float, float, float]], ...]
    asphalt: Tuple[float, float, float]
    sidewalk: Tuple[float, float, float]
    path: Tuple[float, float, float]
    zone: Tuple[Tuple[float, ...], Tuple[float, ...]]
    marking_yellow: bool
    extra: dict = field(default_factory=dict)


def make_palette(rng: np.random.Generator) -> Palette:
    def pick(options):
        return tuple(float(v) for v in options[int(rng.integers(len(options)))])

    def jitter(c, amount=12):
        return tuple(float(np.clip(v + rng.uniform(-amount, amount), 0, 255)) for v in c)

    plazas = tuple(("grass", jitter(pick(_GRASS))) if rng.random() < 0.55 else ("paving", jitter(pick(_PAVING)))
                   for _ in range(2))
    a = rng.uniform(55, 95)
    asphalt = jitter((a, a, a + rng.uniform(-4, 6)), 4)
    s = rng.uniform(140, 190)
    sidewalk = jitter((s, s * 0.98, s * 0.94), 8)
    z = _ZONE[int(rng.integers(len(_ZONE)))]
    return Palette(plazas, asphalt, sidewalk, jitter(pick(_PAVING)), z, bool(rng.random() < 0.6))


# --- background --------------------------------------------------------------
def render_background(layout: Layout, palette: Palette, rng: np.random.Generator) -> np.ndarray:
    """The static scene as uint8 (H, W, 3): ground textures, markings, zone, trees, benches, vignette."""
    L = layout
    h, w = L.height, L.width
    img = np.empty((h, w, 3), np.float32)
    cell = L.ppm
    for i, plaza in enumerate(L.plazas):
        kind, base = palette.plazas[i]
        ys = _rows(plaza, h)
        if ys.stop <= ys.start:
            continue
        if kind == "grass":
            tex = draw.texture(rng, (ys.stop - ys.start, w), base, [(cell * 3, 10), (cell * 0.6, 7)], 6.0,
                               tint=(-6, 8, -4))
        else:
            tex = draw.texture(rng, (ys.stop - ys.start, w), base, [(cell * 4, 8), (cell * 0.8, 4)], 4.0)
            _grid_lines(tex, L.mx(rng.uniform(1.2, 2.0)), L.my(rng.uniform(1.2, 2.0)), -18, y_offset=ys.start)
        img[ys] = tex
    # footpath across the plazas (drawn before the sidewalks and the road, which lie on top)
    cr = _cols(L.crossing, w)
    img[:, cr] = draw.texture(rng, (h, cr.stop - cr.start), palette.path, [(cell * 2, 6)], 4.0)
    _grid_lines(img[:, cr], L.mx(0.9), L.my(0.9), -14)
    for sw in L.sidewalks:
        ys = _rows(sw, h)
        tex = draw.texture(rng, (ys.stop - ys.start, w), palette.sidewalk, [(cell * 2, 6), (cell * 0.4, 3)], 4.0)
        _grid_lines(tex, L.mx(rng.uniform(0.5, 0.9)), L.my(rng.uniform(0.5, 0.9)), -16, y_offset=ys.start)
        img[ys] = tex
    ys = _rows(L.road, h)
    img[ys] = draw.texture(rng, (ys.stop - ys.start, w), palette.asphalt, [(cell * 5, 5), (cell * 0.3, 3)], 5.0)
    _road_markings(img, L, palette)
    for x0, x1 in ((L.zebra.x0, L.zebra.x1),):
        stripe, y = L.my(0.5), L.road.y0 + L.my(0.3)
        while y + stripe < L.road.y1 - L.my(0.2):
            img[_rows(Rect(0, y, 0, y + stripe), h), _cols(Rect(x0 + 2, 0, x1 - 2, 0), w)] = (225, 225, 222)
            y += 2 * stripe
    _zone(img, L, palette)
    out = np.clip(img, 0, 255).astype(np.uint8)
    for b in L.benches:
        draw.rect(out, b.x0 + 2, b.y1, b.x1 + 2, b.y1 + L.my(0.3), (0, 0, 0), 0.25)
        draw.rect(out, b.x0, b.y0, b.x1, b.y1, (120, 80, 50))
        draw.rect(out, b.x0, b.y0, b.x1, b.y0 + (b.y1 - b.y0) * 0.3, (95, 62, 40))
    for x, y, r in L.trees:
        sx, sy = L.sun
        draw.ellipse(out, x + sx * r * 1.5, y + sy * r * 1.5 + r * 0.3, r, r * 0.55, (0, 0, 0), 0.3, soft=0.3)
        draw.capsule(out, x, y + r * 0.25, x, y - r * 0.2, r * 0.12, (80, 60, 40))
        g = rng.uniform(35, 70)
        draw.ellipse(out, x, y - r * 0.5, r, r * 0.8, (g * 0.6, g * 1.3, g * 0.5))
        for _ in range(6):  # lumpy canopy
            ox, oy = rng.uniform(-0.5, 0.5) * r, rng.uniform(-0.45, 0.3) * r
            c = g * rng.uniform(0.8, 1.35)
            draw.ellipse(out, x + ox, y - r * 0.5 + oy, r * 0.45, r * 0.38, (c * 0.6, c * 1.3, c * 0.5), 0.8,
                         soft=0.4)
    return _vignette(out, rng)


def _rows(r: Rect, h: int) -> slice:
    return slice(int(np.clip(round(r.y0), 0, h)), int(np.clip(round(r.y1), 0, h)))


def _cols(r: Rect, w: int) -> slice:
    return slice(int(np.clip(round(r.x0), 0, w)), int(np.clip(round(r.x1), 0, w)))


def _grid_lines(tex: np.ndarray, step_x: float, step_y: float, delta: float, y_offset: int = 0) -> None:
    """Darken thin lines every step (paving slabs, tiles)."""
    h, w = tex.shape[:2]
    step_x, step_y = max(step_x, 3.0), max(step_y, 3.0)
    cols = (np.arange(w) % step_x) < 1.0
    rows = ((np.arange(h) + y_offset) % step_y) < 1.0
    tex[:, cols] += delta
    tex[rows, :] += delta


def _road_markings(img: np.ndarray, L: Layout, palette: Palette) -> None:
    h, w = L.height, L.width
    white, yellow = (228, 228, 225), (225, 190, 60)
    t = max(L.my(0.15), 1.0)
    for y in (L.road.y0 + L.my(0.25), L.road.y1 - L.my(0.25) - t):            # edge lines
        img[_rows(Rect(0, y, 0, y + t), h), :] = white
    kerb = max(L.my(0.2), 1.0)
    for y in (L.road.y0, L.road.y1 - kerb):
        img[_rows(Rect(0, y, 0, y + kerb), h), :] *= 0.75
    mid = (L.road.y0 + L.road.y1) / 2
    if L.two_way and palette.marking_yellow:                                   # double solid yellow
        for y in (mid - 1.5 * t, mid + 0.5 * t):
            img[_rows(Rect(0, y, 0, y + t), h), :] = yellow
    else:                                                                      # dashed divider
        dash, gap = L.mx(3.0), L.mx(5.0)
        x = -((L.width * 0.37) % (dash + gap))
        while x < w:
            img[_rows(Rect(0, mid - t / 2, 0, mid + t / 2), h), _cols(Rect(x, 0, x + dash, 0), w)] = white
            x += dash + gap


def _zone(img: np.ndarray, L: Layout, palette: Palette) -> None:
    """Restricted zone: tinted fill, a hatched border band and a cross."""
    z = L.zone
    ys, xs = _rows(z, L.height), _cols(z, L.width)
    c1, c2 = (np.asarray(c, np.float32) for c in palette.zone)
    region = img[ys, xs]
    region += 0.18 * (c1 - region)
    yy, xx = np.mgrid[ys, xs].astype(np.float32)
    band = max(L.mx(0.45), 2.0)
    edge = np.minimum.reduce([xx - z.x0, z.x1 - 1 - xx, (yy - z.y0) / L.k, (z.y1 - 1 - yy) / L.k])
    border = edge < band
    hatch = ((xx + yy) // max(L.mx(0.35), 2.0)) % 2 == 0
    region[border & hatch] = c1
    region[border & ~hatch] = c2
    # a thin cross inside the border
    u, v = (xx - z.x0) / z.w, (yy - z.y0) / z.h
    thick = max(L.mx(0.08), 0.7) / z.w
    cross = (np.abs(u - v) < thick) | (np.abs(u + v - 1) < thick)
    region[cross & ~border] = c1
    img[ys, xs] = region


def _vignette(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    gain = (1.0 - rng.uniform(0.08, 0.2) * r2 / 2).astype(np.float32)
    return np.clip(img * gain[..., None], 0, 255).astype(np.uint8)


def free_point(rng: np.random.Generator, layout: Layout, areas: Sequence[Rect], avoid: Sequence[Rect],
               inside: Optional[Rect] = None, tries: int = 200) -> Optional[Tuple[float, float]]:
    """A random ground point in one of ``areas`` (optionally within ``inside``) not in any ``avoid`` rect."""
    for _ in range(tries):
        a = areas[int(rng.integers(len(areas)))]
        if inside is not None:
            a = a.clip(inside)
        if a.w <= 1 or a.h <= 1:
            continue
        x, y = rng.uniform(a.x0, a.x1), rng.uniform(a.y0, a.y1)
        if not any(r.contains(x, y) for r in avoid):
            return float(x), float(y)
    return None
