"""People and objects of the synthetic world: how they move and how they are drawn (cars: ``cars``).

Motion is planned once per clip as per-frame arrays (a ``Track`` per person,
``Timeline`` shared with cars), so rendering a frame only indexes arrays. Normal
behaviour is deliberately varied (pauses, crouching to tie a shoe, joggers,
pairs, people carrying bags, cars braking for the zebra crossing) so that the
anomalies are not simply "anything that is not a straight walk".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import draw
from .scene import Layout, Rect, free_point

WALK_STRIDE_M = 1.4      # ground distance per gait cycle, walking
RUN_STRIDE_M = 2.4
RUN_SPEED = 2.2          # m/s above which people run

_SHIRTS = ((200, 40, 40), (40, 70, 160), (230, 230, 230), (30, 30, 35), (60, 130, 70), (230, 180, 40),
           (120, 60, 140), (240, 120, 40), (90, 160, 200), (150, 150, 150), (200, 100, 130))
_PANTS = ((40, 45, 70), (30, 30, 30), (90, 80, 60), (120, 120, 130), (60, 50, 40), (170, 160, 140))
_SKIN = ((235, 200, 170), (205, 160, 120), (160, 110, 75), (110, 75, 50))
_HAIR = ((30, 25, 20), (80, 55, 30), (160, 130, 80), (120, 120, 120))
_BAGS = ((40, 40, 45), (120, 70, 40), (150, 30, 30), (30, 60, 120), (200, 170, 60), (70, 90, 60), (210, 210, 205))


def pick_colour(rng: np.random.Generator, options, jitter: float = 10.0) -> Tuple[float, float, float]:
    c = np.asarray(options[int(rng.integers(len(options)))], np.float64)
    return tuple(float(v) for v in np.clip(c + rng.uniform(-jitter, jitter, 3), 0, 255))


# --- appearance --------------------------------------------------------------
@dataclass(frozen=True)
class BagLook:
    kind: str                    # "bag", "suitcase", "box"
    color: Tuple[float, float, float]
    w_m: float
    h_m: float


def random_bag(rng: np.random.Generator, large: bool = False) -> BagLook:
    kind = ("bag", "suitcase", "box")[int(rng.integers(3))]
    scale = rng.uniform(1.3, 1.7) if large else rng.uniform(0.8, 1.1)
    w, h = {"bag": (0.45, 0.35), "suitcase": (0.5, 0.65), "box": (0.55, 0.45)}[kind]
    return BagLook(kind, pick_colour(rng, _BAGS, 15), w * scale, h * scale)


@dataclass(frozen=True)
class Look:
    height_m: float
    build: float                 # width factor
    shirt: Tuple[float, float, float]
    pants: Tuple[float, float, float]
    skin: Tuple[float, float, float]
    hair: Tuple[float, float, float]
    bag: Optional[BagLook] = None


def random_look(rng: np.random.Generator, bag_prob: float = 0.3, large_bag: bool = False) -> Look:
    bag = random_bag(rng, large_bag) if rng.random() < bag_prob else None
    return Look(float(rng.normal(1.72, 0.08)), float(rng.uniform(0.85, 1.2)), pick_colour(rng, _SHIRTS, 20),
                pick_colour(rng, _PANTS), pick_colour(rng, _SKIN, 8), pick_colour(rng, _HAIR, 8), bag)


# --- person tracks -----------------------------------------------------------
class Timeline:
    """Per-frame arrays that start at frame ``t0``: shared frame bookkeeping of tracks and cars."""
    t0: int
    x: np.ndarray

    @property
    def t1(self) -> int:
        return self.t0 + len(self.x)

    def index(self, frame: int) -> Optional[int]:
        i = frame - self.t0
        return i if 0 <= i < len(self.x) else None


@dataclass
class Track(Timeline):
    """Per-frame state of one person from frame ``t0`` on (t0 may be negative: pre-roll)."""
    t0: int
    x: np.ndarray          # foot position, px
    y: np.ndarray
    crouch: np.ndarray     # 0 standing .. 1 crouched
    flail: np.ndarray      # 0 .. 1: erratic arm and body motion (fighting)
    phase: np.ndarray      # gait phase, rad
    gait: np.ndarray       # leg swing amplitude (0 still, 1 walking, 1.5 running)
    fx: np.ndarray         # facing, unit vector in ground metres
    fy: np.ndarray
    carry: np.ndarray      # bool: holds its bag



class TrackBuilder:
    """Builds a Track segment by segment: walks, holds (standing, crouching), custom motion."""

    def __init__(self, layout: Layout, fps: float, t0: int, x: float, y: float, carry: bool = False):
        self.L, self.fps, self.t0 = layout, fps, t0
        self.carry = carry
        self._cols = {k: [] for k in ("x", "y", "crouch", "flail", "fx", "fy", "carry")}
        self._add([x], [y])

    @property
    def pos(self) -> Tuple[float, float]:
        return float(self._cols["x"][-1][-1]), float(self._cols["y"][-1][-1])

    @property
    def frames(self) -> int:
        return sum(len(a) for a in self._cols["x"])

    @property
    def now(self) -> int:
        """The frame the next added sample will have."""
        return self.t0 + self.frames

    def _add(self, xs, ys, crouch=0.0, flail=0.0, face=None) -> "TrackBuilder":
        n = len(xs)
        fx, fy = (np.full(n, np.nan), np.full(n, np.nan)) if face is None else (
            np.broadcast_to(np.asarray(face[0], float), (n,)), np.broadcast_to(np.asarray(face[1], float), (n,)))
        for key, val in (("x", xs), ("y", ys), ("crouch", crouch), ("flail", flail), ("fx", fx), ("fy", fy),
                         ("carry", self.carry)):
            self._cols[key].append(np.broadcast_to(np.asarray(val, np.float64), (n,)).copy())
        return self

    def walk_to(self, x: float, y: float, speed: float) -> "TrackBuilder":
        x0, y0 = self.pos
        dist = float(self.L.metres(x - x0, y - y0))
        n = max(1, int(round(dist / max(speed, 0.1) * self.fps)))
        t = np.arange(1, n + 1) / n
        return self._add(x0 + t * (x - x0), y0 + t * (y - y0))

    def walk(self, points: Sequence[Tuple[float, float]], speed: float) -> "TrackBuilder":
        for x, y in points:
            self.walk_to(x, y, speed)
        return self

    def hold(self, seconds: float, crouch: float = 0.0, face=None) -> "TrackBuilder":
        n = max(1, int(round(seconds * self.fps)))
        x, y = self.pos
        c = crouch * np.clip(4 * np.minimum(np.arange(n) + 1, n - np.arange(n)) / n, 0, 1) if crouch else 0.0
        return self._add(np.full(n, x), np.full(n, y), c, 0.0, face)

    def custom(self, xs, ys, crouch=0.0, flail=0.0, face=None) -> "TrackBuilder":
        return self._add(np.asarray(xs, float), np.asarray(ys, float), crouch, flail, face)

    def set_carry(self, carry: bool) -> "TrackBuilder":
        self.carry = carry
        return self

    def build(self) -> Track:
        c = {k: np.concatenate(v) for k, v in self._cols.items()}
        L, fps = self.L, self.fps
        dx = np.diff(c["x"], prepend=c["x"][0])
        dy = np.diff(c["y"], prepend=c["y"][0])
        gx, gy = dx / L.ppm, dy / (L.ppm * L.k)                       # ground metres per frame
        step = np.hypot(gx, gy)
        speed = np.convolve(step * fps, np.ones(5) / 5, mode="same")
        run = speed > RUN_SPEED
        flail = c["flail"]
        phase = np.cumsum(step / np.where(run, RUN_STRIDE_M, WALK_STRIDE_M) * 2 * np.pi + flail * 2 * np.pi * 3 / fps)
        gait = np.clip(speed / 1.0, 0, 1) * np.where(run, 1.5, 1.0) + 0.6 * flail
        # facing: the walking direction, held while standing, unless given explicitly
        fx, fy = c["fx"].copy(), c["fy"].copy()
        moving = step * fps > 0.2
        auto = np.isnan(fx)
        fx[auto & moving] = (gx / np.maximum(step, 1e-9))[auto & moving]
        fy[auto & moving] = (gy / np.maximum(step, 1e-9))[auto & moving]
        fx, fy = _ffill(fx, 0.0), _ffill(fy, 1.0)
        norm = np.maximum(np.hypot(fx, fy), 1e-9)
        f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
        return Track(self.t0, f32(c["x"]), f32(c["y"]), f32(c["crouch"]), f32(flail), f32(phase), f32(gait),
                     f32(fx / norm), f32(fy / norm), c["carry"] > 0.5)


def _ffill(a: np.ndarray, default: float) -> np.ndarray:
    """Forward-fill NaNs (then back-fill the head with ``default``)."""
    idx = np.where(~np.isnan(a), np.arange(len(a)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = a[idx]
    out[np.isnan(out)] = default
    return out


@dataclass
class Person:
    look: Look
    track: Track
    event: Optional[int] = None        # index of the event this person acts in (None: normal)

    @property
    def sort_y(self) -> np.ndarray:
        return self.track.y


# --- drawing people and objects ---------------------------------------------
def draw_person(img: np.ndarray, L: Layout, p: Person, i: int) -> None:
    tr, lk = p.track, p.look
    x, y = float(tr.x[i]), float(tr.y[i])
    h = lk.height_m * L.ppm
    c, ph, g, fl = float(tr.crouch[i]), float(tr.phase[i]), float(tr.gait[i]), float(tr.flail[i])
    gx, gy = float(tr.fx[i]), float(tr.fy[i])
    s, co = math.sin(ph), math.cos(ph)
    sx, sy = L.sun
    draw.ellipse(img, x + sx * h * 0.35, y + sy * h * 0.15, h * 0.2, h * 0.07, (0, 0, 0), 0.3)
    bob = abs(s) * 0.025 * h * min(g, 1.5)
    hip_y = y - h * 0.47 * (1 - 0.45 * c) - bob
    lean = (0.12 * h * c + fl * 0.06 * h * math.sin(ph * 0.7)) * np.array([gx, gy * L.k])
    stride = 0.17 * h * min(g, 1.6)
    side_x = -gy * 0.045 * h          # hips sit across the walking direction
    for sign in (1.0, -1.0):
        off = sign * s * stride
        lift = max(0.0, sign * co) * 0.05 * h * min(g, 1.5)
        draw.capsule(img, x + sign * side_x + sign * 0.02 * h, hip_y,
                     x + gx * off + sign * side_x, y + gy * off * L.k - lift, 0.05 * h, lk.pants)
    tx, ty = x + lean[0], hip_y - 0.17 * h + lean[1]
    draw.ellipse(img, tx, ty, 0.12 * h * lk.build, 0.2 * h, lk.shirt)
    sh_y = ty - 0.12 * h
    for sign in (1.0, -1.0):
        sx0 = tx + sign * 0.11 * h * lk.build
        if fl > 0:   # flailing: arms raised, thrown around out of phase with each other
            a = ph * (1.9 if sign > 0 else 2.3) + sign
            hx, hy = sx0 + sign * 0.2 * h * abs(math.cos(a)) * fl, sh_y - 0.2 * h * math.sin(a) * fl
        else:
            swing = -sign * s * 0.11 * h * min(g, 1.5)
            hx, hy = sx0 + gx * swing, sh_y + 0.26 * h * (1 - 0.3 * c) + gy * swing * L.k * 0.5
        draw.capsule(img, sx0, sh_y, hx, hy, 0.038 * h, lk.shirt)
        draw.ellipse(img, hx, hy, 0.03 * h, 0.03 * h, lk.skin)
        if sign > 0 and lk.bag is not None and tr.carry[i]:
            _draw_bag(img, L, lk.bag, hx, hy + lk.bag.h_m * L.ppm * 0.9, shadow=False)
    hx, hy = tx + lean[0] * 0.3, ty - 0.27 * h
    hr = 0.075 * h
    if gy < -0.3:   # seen from behind: all hair
        draw.ellipse(img, hx, hy, hr, hr * 1.05, lk.hair)
    else:
        draw.ellipse(img, hx, hy, hr, hr * 1.05, lk.skin)
        draw.ellipse(img, hx, hy - hr * 0.45, hr * 1.02, hr * 0.6, lk.hair)


def _draw_bag(img: np.ndarray, L: Layout, bag: BagLook, x: float, y_bottom: float, shadow: bool = True) -> None:
    w, h = bag.w_m * L.ppm, bag.h_m * L.ppm
    if shadow:
        draw.ellipse(img, x + L.sun[0] * h, y_bottom, w * 0.65, h * 0.25, (0, 0, 0), 0.35)
    dark = tuple(v * 0.6 for v in bag.color)
    draw.rect(img, x - w / 2, y_bottom - h, x + w / 2, y_bottom, bag.color)
    draw.rect(img, x - w / 2, y_bottom - h * 0.25, x + w / 2, y_bottom, dark)
    if bag.kind == "suitcase":
        draw.capsule(img, x - w * 0.2, y_bottom - h * 1.1, x + w * 0.2, y_bottom - h * 1.1, max(h * 0.05, 0.5), dark)
    elif bag.kind == "box":
        draw.rect(img, x - w * 0.06, y_bottom - h, x + w * 0.06, y_bottom, (200, 190, 150), 0.7)


@dataclass
class StaticObject:
    """An object lying on the ground between frames [start, end) (the abandoned bag)."""
    bag: BagLook
    x: float
    y: float
    start: int
    end: int
    event: Optional[int] = None

    def draw(self, img: np.ndarray, L: Layout) -> None:
        _draw_bag(img, L, self.bag, self.x, self.y)


# --- normal pedestrian traffic -----------------------------------------------
def poisson_times(rng: np.random.Generator, rate: float, t0: float, t1: float) -> np.ndarray:
    return np.sort(rng.uniform(t0, t1, rng.poisson(max(rate, 0.0) * (t1 - t0))))


def walking_speed(rng: np.random.Generator) -> float:
    return float(np.clip(rng.normal(1.35, 0.15), 0.9, 1.8))


def plan_pedestrians(rng: np.random.Generator, L: Layout, fps: float, t_start: float, t_end: float,
                     density: float, avoid: Sequence[Rect] = ()) -> List[Person]:
    """Normal pedestrians over [t_start, t_end) seconds: sidewalk walkers, road crossers, plaza strollers."""
    people: List[Person] = []
    obstacles = list(L.obstacles()) + list(avoid)
    w, h = L.width, L.height
    for si, sw in enumerate(L.sidewalks):
        for d in (1, -1):
            for t in poisson_times(rng, 0.06 * density, t_start, t_end):
                y = rng.uniform(sw.y0 + 0.25 * sw.h, sw.y1 - 0.25 * sw.h)
                x_in, x_out = (-L.mx(1.0), w + L.mx(1.0)) if d > 0 else (w + L.mx(1.0), -L.mx(1.0))
                route: List[tuple] = []
                r = rng.random()
                if r < 0.1:                      # stop for a while (waiting, phone)
                    route = [("walk", rng.uniform(0.1, 0.9) * w, y), ("hold", rng.uniform(2, 8), 0.0)]
                elif r < 0.14:                   # crouch to tie a shoe
                    route = [("walk", rng.uniform(0.1, 0.9) * w, y), ("hold", rng.uniform(1.5, 3.0), 1.0)]
                elif r < 0.3:                    # turn and cross the road at the zebra
                    cx = rng.uniform(L.crossing.x0 + 0.25 * L.crossing.w, L.crossing.x1 - 0.25 * L.crossing.w)
                    other = L.sidewalks[1 - si]
                    oy = rng.uniform(other.y0 + 0.25 * other.h, other.y1 - 0.25 * other.h)
                    end_x = (-L.mx(1.0), w + L.mx(1.0))[int(rng.integers(2))]
                    route = [("walk", cx, y), ("walk", cx, oy), ("walk", end_x, oy)]
                else:
                    route.append(("walk", x_out, y))
                people += _realise(rng, L, fps, t, (x_in, y), route, avoid=avoid)
    for end in (0, 1):                           # along the footpath, across the road
        for t in poisson_times(rng, 0.03 * density, t_start, t_end):
            cx = rng.uniform(L.crossing.x0 + 0.2 * L.crossing.w, L.crossing.x1 - 0.2 * L.crossing.w)
            y_in, y_out = (-L.mx(1.0), h + L.mx(1.0)) if end == 0 else (h + L.mx(1.0), -L.mx(1.0))
            people += _realise(rng, L, fps, t, (cx, y_in), [("walk", cx + rng.normal(0, L.mx(0.3)), y_out)],
                               avoid=avoid)
    for plaza in L.plazas:                       # strollers: enter, visit a spot or two, leave
        if plaza.h < L.my(2.0):
            continue
        inner = plaza.inflate(-L.mx(0.5), -L.my(0.5))
        for t in poisson_times(rng, 0.02 * density * plaza.h / L.my(8.0), t_start, t_end):
            route = _stroll(rng, L, inner, obstacles)
            if route:
                people += _realise(rng, L, fps, t, route[0][1:], route[1:], group_prob=0.1)
    return people


def _stroll(rng: np.random.Generator, L: Layout, area: Rect, obstacles: Sequence[Rect]):
    for _ in range(10):
        y_in, y_out = rng.uniform(area.y0, area.y1, 2)
        x_in, x_out = (-L.mx(1.0), L.width + L.mx(1.0))[int(rng.integers(2))], \
            (-L.mx(1.0), L.width + L.mx(1.0))[int(rng.integers(2))]
        pts = [(x_in, y_in)]
        for _ in range(int(rng.integers(1, 3))):
            p = free_point(rng, L, [area], obstacles)
            if p is not None:
                pts.append(p)
        pts.append((x_out, y_out))
        if len(pts) > 2 and not any(o.hits_segment(*a, *b) for a, b in zip(pts, pts[1:]) for o in obstacles):
            route = [("start",) + pts[0]]
            for p in pts[1:-1]:
                route += [("walk",) + p, ("hold", rng.uniform(1.0, 6.0), 0.0)]
            return route + [("walk",) + pts[-1]]
    return None


def _detour(L: Layout, a: Tuple[float, float], b: Tuple[float, float], rects: Sequence[Rect]):
    """Waypoints that take the walk a -> b around the first rect in its way: preferably on the side
    away from the road (or beside a path running up/down the picture), else the other side; never
    through the restricted zone, a tree or a bench when a side avoids them."""
    for r in rects:
        if not r.hits_segment(a[0], a[1], b[0], b[1]):
            continue
        mx, my = L.mx(0.7), L.my(0.7)
        if abs(b[0] - a[0]) / L.ppm >= abs(b[1] - a[1]) / (L.ppm * L.k):
            away_first = r.center[1] < L.road.center[1]
            xs = (r.x0 - mx, r.x1 + mx) if b[0] > a[0] else (r.x1 + mx, r.x0 - mx)
            options = [[(xs[0], a[1] + (yd - a[1]) * 0.2), (xs[0], yd), (xs[1], yd), (xs[1], b[1] + (yd - b[1]) * 0.2)]
                       for yd in ((r.y0 - my, r.y1 + my) if away_first else (r.y1 + my, r.y0 - my))]
        else:
            ys = (r.y0 - my, r.y1 + my) if b[1] > a[1] else (r.y1 + my, r.y0 - my)
            options = [[(xd, ys[0]), (xd, ys[1])]
                       for xd in ((r.x0 - mx, r.x1 + mx) if a[0] < r.center[0] else (r.x1 + mx, r.x0 - mx))]
        blockers = L.obstacles()
        for pts in options:
            route = [a] + pts + [b]
            if not any(o.hits_segment(*p, *q) for p, q in zip(route, route[1:]) for o in blockers):
                return pts
        return options[1]
    return []


def _realise(rng: np.random.Generator, L: Layout, fps: float, t: float, start: Tuple[float, float], route,
             group_prob: float = 0.12, avoid: Sequence[Rect] = ()) -> List[Person]:
    """One person (or a pair walking side by side) following ``route`` from time ``t``,
    walking around the ``avoid`` rects (event spots)."""
    jog = rng.random() < 0.06
    speed = rng.uniform(2.6, 3.4) if jog else walking_speed(rng)
    n = 2 if (not jog and rng.random() < group_prob) else 1
    out = []
    for k in range(n):
        off = np.array([L.mx(0.35), L.my(0.55)]) * k
        look = random_look(rng, bag_prob=0.0 if jog else 0.3)
        b = TrackBuilder(L, fps, int(round(t * fps)), start[0] + off[0], start[1] + off[1], carry=look.bag is not None)
        for step in route:
            if step[0] == "walk":
                target = (step[1] + off[0], step[2] + off[1])
                b.walk(_detour(L, b.pos, target, avoid) + [target], speed)
            else:
                b.hold(step[1], crouch=step[2])
        out.append(Person(look, b.build()))
    return out


def zebra_busy(L: Layout, people: Sequence[Person], f0: int, f1: int) -> np.ndarray:
    """(2, f1 - f0) bool: whether someone is on (or about to step onto) the zebra in each lane, per frame."""
    busy = np.zeros((len(L.lanes), f1 - f0), bool)
    zx = L.zebra.inflate(L.mx(0.6), 0)
    for p in people:
        tr = p.track
        on_x = (tr.x >= zx.x0) & (tr.x < zx.x1)
        if not on_x.any():
            continue
        frames = np.arange(tr.t0, tr.t1)
        for li, lane in enumerate(L.lanes):
            near = on_x & (np.abs(tr.y - lane.y) < lane.half + L.my(1.5))
            idx = frames[near] - f0
            busy[li, idx[(idx >= 0) & (idx < f1 - f0)]] = True
    return busy
