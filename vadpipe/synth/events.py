"""The five anomaly types of the synthetic world and how each is staged and drawn.

Each planner receives a target window [start, end) in frames and returns the
actors it adds (people, a lying object, a fire, a wrong-way car request) plus
a ``realise`` step that reads the *drawn* interval back from those actors
(e.g. the frames where the intruder's feet are inside the zone, the frames
where the wrong-way car is in the picture). The ground truth is that realised
interval, so labels always agree with the pixels.

| type       | anomalous window                                           |
|------------|------------------------------------------------------------|
| Fighting   | two people who walked up to each other move erratically    |
| Intrusion  | a person's feet are inside the restricted zone             |
| Abandoned  | from the moment the bag is released until it is picked up (or the clip ends) |
| WrongWay   | a car driving against its lane's direction is in the picture |
| Fire       | flames, ground glow and smoke exist (they fade out at the end if put out) |
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import draw
from .agents import Person, StaticObject, TrackBuilder, random_look, walking_speed
from .cars import Car, WrongWayRequest
from .scene import Layout, Rect, free_point

EVENT_TYPES = ("Fighting", "Intrusion", "Abandoned", "WrongWay", "Fire")


@dataclass
class Event:
    type: str
    start: int          # first anomalous frame (0-based)
    end: int            # one past the last anomalous frame
    region: Rect        # pixel box where it shows

    def to_dict(self) -> dict:
        return {"type": self.type, "start": int(self.start), "end": int(self.end), "region": self.region.as_list()}


@dataclass
class Fire:
    x: float
    y: float
    start: int
    end: int
    r_max: float                 # px
    grow: int                    # frames to full size
    tongues: np.ndarray          # (N, 4): offset, height factor, width factor, flicker phase
    smoke: np.ndarray            # (M, 7): birth, x offset, rise px/frame, drift px/frame, life frames, grey, alpha
    fade: int                    # frames of fading out when put out before the clip ends
    event: Optional[int] = None

    def life(self, f: int) -> float:
        if f < self.start or f >= self.end:
            return 0.0
        return min(1.0, (self.end - f) / max(self.fade, 1))

    def radius(self, f: int) -> float:
        life = self.life(f)
        if life <= 0:
            return 0.0
        g = min(1.0, (f - self.start + 1) / max(self.grow, 1))
        return self.r_max * (0.25 + 0.75 * g ** 0.7) * life

    def draw_ground(self, img: np.ndarray, L: Layout, f: int) -> None:
        r = self.radius(f)
        if r <= 0:
            return
        flick = 0.8 + 0.2 * math.sin(f * 0.9) * math.sin(f * 0.37 + 1.0)
        draw.glow(img, self.x, self.y - r * 0.3, r * 4.5, r * 4.5 * L.k, (255, 140, 40), 0.55 * flick)
        draw.ellipse(img, self.x, self.y, r * 1.1, r * 0.45 * L.k + 1, (25, 20, 18), 0.9)

    def draw_flames(self, img: np.ndarray, L: Layout, f: int) -> None:
        r = self.radius(f)
        if r <= 0:
            return
        for off, hf, wf, ph in self.tongues:
            flick = 0.7 + 0.3 * math.sin(f * 1.3 + ph) * math.cos(f * 0.53 + 2 * ph)
            hh, ww = r * hf * flick, r * wf
            cx, base = self.x + off * r, self.y - r * 0.1
            sway = math.sin(f * 0.8 + ph) * ww * 0.4
            for scale, color, alpha in ((1.0, (220, 50, 20), 0.85), (0.7, (255, 140, 30), 0.9),
                                        (0.4, (255, 235, 140), 0.95)):
                draw.ellipse(img, cx + sway * scale, base - hh * scale / 2, ww * scale, hh * scale / 2 + 0.5,
                             color, alpha, soft=0.35)

    def draw_smoke(self, img: np.ndarray, L: Layout, f: int) -> None:
        life = self.life(f)
        if life <= 0:
            return
        age = f - self.smoke[:, 0]
        live = (age >= 0) & (age < self.smoke[:, 4])
        for (birth, off, rise, drift, span, grey, alpha), a in zip(self.smoke[live], age[live]):
            u = a / span
            rad = self.r_max * (0.6 + 2.8 * u)
            x = self.x + off * self.r_max + drift * a
            y = self.y - self.r_max * 1.5 - rise * a
            draw.ellipse(img, x, y, rad, rad * 0.85, (grey, grey, grey), alpha * (1 - u) * min(1.0, 4 * u + 0.2)
                         * life, soft=0.7)

    def region(self, L: Layout) -> Rect:
        up = self.smoke[:, 2].max(initial=0) * self.smoke[:, 4].max(initial=0) + self.r_max * 6
        side = np.abs(self.smoke[:, 3]).max(initial=0) * self.smoke[:, 4].max(initial=0) + self.r_max * 4.5
        return Rect(self.x - side, self.y - up, self.x + side, self.y + self.r_max * 4.5 * L.k).clip(
            Rect(0, 0, L.width, L.height))


@dataclass
class Staged:
    """What one event adds to a clip, and how to read its realised interval once cars have moved."""
    people: List[Person] = field(default_factory=list)
    objects: List[StaticObject] = field(default_factory=list)
    fires: List[Fire] = field(default_factory=list)
    wrong_way: List[WrongWayRequest] = field(default_factory=list)
    extra_cars: List[Tuple[int, int]] = field(default_factory=list)
    avoid: List[Rect] = field(default_factory=list)      # ground normal pedestrians keep out of
    realise: Optional[Callable[[Sequence[Car]], Event]] = None


class Stage:
    """Shared context for the planners of one clip."""

    def __init__(self, rng: np.random.Generator, layout: Layout, fps: float, frames: int):
        self.rng, self.L, self.fps, self.n = rng, layout, fps, frames

    def sec(self, frames: float) -> float:
        return frames / self.fps

    def frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fps)))

    def spot(self, areas: Sequence[Rect], extra_avoid: Sequence[Rect] = (), top_margin_m: float = 2.2,
             inside: Optional[Rect] = None):
        """A ground point in the focus square (or ``inside``), off obstacles, the road and the crossing."""
        L = self.L
        avoid = list(L.obstacles()) + [L.road.inflate(0, L.my(0.3)), L.crossing.inflate(L.mx(0.5), 0)]
        x0, x1 = (L.focus.x0, L.focus.x1) if inside is None else (inside.x0, inside.x1)
        inside = Rect(x0 + L.mx(1.0), L.mx(top_margin_m), x1 - L.mx(1.0), L.height - L.my(0.8))
        return free_point(self.rng, L, areas, avoid + list(extra_avoid), inside=inside)

    def clear_path(self, pts: Sequence[Tuple[float, float]], extra: Sequence[Rect] = ()) -> bool:
        L = self.L
        blockers = L.obstacles() + [L.road.inflate(0, -L.my(0.2))] + list(extra)
        return not any(o.hits_segment(*a, *b) for a, b in zip(pts, pts[1:]) for o in blockers)

    def person_box(self, x0: float, y0: float, x1: float, y1: float) -> Rect:
        """A ground box grown upwards by a person's height (bodies stand above their feet)."""
        L = self.L
        return Rect(x0, y0 - 1.9 * L.ppm, x1, y1 + L.my(0.3)).clip(Rect(0, 0, L.width, L.height))


def _interval(mask: np.ndarray, t0: int, n: int) -> Tuple[int, int]:
    """[first, last + 1) of the True frames of a per-track mask, clipped to the clip."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return 0, 0
    return max(int(idx[0]) + t0, 0), min(int(idx[-1]) + 1 + t0, n)


def _edge_x(st: Stage, towards: float) -> float:
    """An off-picture x on the side closest to ``towards``."""
    return -st.L.mx(1.5) if towards < st.L.width / 2 else st.L.width + st.L.mx(1.5)


def _approach(st: Stage, target: Tuple[float, float], band: Rect,
              prefer: Optional[int] = None) -> List[Tuple[float, float]]:
    """A plausible walking route from off-picture (left: 0, right: 1) to ``target`` along ``band``."""
    rng, L = st.rng, st.L
    y_band = float(np.clip(target[1] + rng.normal(0, L.my(0.5)), band.y0 + 0.2 * band.h, band.y1 - 0.2 * band.h))
    for side in (rng.permutation(2) if prefer is None else (prefer, 1 - prefer)):
        x0 = -L.mx(1.5) if side == 0 else L.width + L.mx(1.5)
        pts = [(x0, y_band), (target[0] + (L.mx(1.5) if side else -L.mx(1.5)), y_band), target]
        if st.clear_path(pts):
            return pts
    return [(_edge_x(st, target[0]), target[1]), target]


def _band_of(L: Layout, y: float) -> Rect:
    for r in (*L.sidewalks, *L.plazas):
        if r.y0 <= y < r.y1:
            return r
    return L.sidewalks[0]


# --- Fighting ----------------------------------------------------------------
def stage_fighting(st: Stage, s: int, e: int, ev: int) -> Staged:
    rng, L, fps = st.rng, st.L, st.fps
    m = st.spot([*L.sidewalks, *L.plazas])
    if m is None:
        return Staged()
    n = e - s
    t = np.arange(n) / fps
    # shared centre wanders; the pair circles, lunges and jitters (erratic, 1.5-4 Hz)
    cx = m[0] + L.mx(0.4) * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6))
    cy = m[1] + L.my(0.4) * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6))
    theta = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, n)) + 0.8 * np.sin(2 * np.pi * 0.3 * t)
    sep = 0.6 + 0.7 * np.sin(2 * np.pi * rng.uniform(0.8, 1.6) * t) ** 2   # lunges
    people = []
    sides = rng.permutation(2)
    for k, sign in enumerate((1.0, -1.0)):
        jx = sum(rng.uniform(0.15, 0.3) * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t + rng.uniform(0, 6))
                 for _ in range(2))
        jy = sum(rng.uniform(0.15, 0.3) * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t + rng.uniform(0, 6))
                 for _ in range(2))
        # ducking and being knocked down: short crouch pulses at random moments
        duck = np.zeros(n)
        for c in rng.uniform(0, n, max(1, int(n / fps / 2.5))).astype(int):
            w = int(rng.integers(max(fps // 4, 1), max(fps // 2, 2) + 1))
            duck[c:c + w] = np.maximum(duck[c:c + w], np.sin(np.linspace(0, np.pi, len(duck[c:c + w]))))
        gx = sign * sep / 2 * np.cos(theta) + jx
        gy = sign * sep / 2 * np.sin(theta) + jy
        xs, ys = cx + gx * L.ppm, cy + gy * L.ppm * L.k
        face = (-sign * np.cos(theta), -sign * np.sin(theta))
        flail = np.clip(0.75 + 0.25 * np.sin(2 * np.pi * 0.7 * t + k), 0, 1)
        # walk in briskly from the side, arriving exactly when the fight starts
        route = _approach(st, (float(xs[0]), float(ys[0])), _band_of(L, m[1]), prefer=int(sides[k]))
        speed = walking_speed(rng) * 1.1
        dist = sum(float(L.metres(b[0] - a[0], b[1] - a[1])) for a, b in zip(route, route[1:]))
        b = TrackBuilder(L, fps, s - 1 - int(round(dist / speed * fps)), *route[0])
        b.walk(route[1:], speed)
        b = _retime(b, s)
        b.custom(xs, ys, crouch=0.8 * duck, flail=flail, face=face)
        away = _edge_x(st, xs[-1] + sign * L.width)             # run off in opposite directions
        b.walk_to(away, float(ys[-1]), rng.uniform(2.6, 3.4))
        people.append(Person(random_look(rng, bag_prob=0.0), b.build(), ev))

    def realise(_cars) -> Event:
        return Event("Fighting", max(s, 0), min(e, st.n), st.person_box(m[0] - L.mx(2.0), m[1] - L.my(2.0),
                                                                      m[0] + L.mx(2.0), m[1] + L.my(2.0)))
    return Staged(people=people, avoid=[Rect(m[0] - L.mx(1.5), m[1] - L.my(1.5), m[0] + L.mx(1.5),
                                             m[1] + L.my(1.5))], realise=realise)


def _retime(b: TrackBuilder, frame: int) -> TrackBuilder:
    """Pad with standing (or trim the start) so the next sample lands on ``frame``."""
    if b.now < frame:
        b.hold((frame - b.now) / b.fps)
    elif b.now > frame:                               # walked too long: start earlier instead
        b.t0 -= b.now - frame
    return b


# --- Intrusion ---------------------------------------------------------------
def stage_intrusion(st: Stage, s: int, e: int, ev: int) -> Staged:
    rng, L, fps = st.rng, st.L, st.fps
    z = L.zone
    top = L.zone_plaza == 0
    sw = L.sidewalks[0] if top else L.sidewalks[1]
    edge_y = z.y1 - 0.5 if top else z.y0 + 0.5                # border facing the sidewalk
    x_in = rng.uniform(z.x0 + 0.15 * z.w, z.x1 - 0.15 * z.w)
    sw_y = rng.uniform(sw.y0 + 0.3 * sw.h, sw.y1 - 0.3 * sw.h)
    out_y = edge_y + (L.my(0.5) if top else -L.my(0.5))       # just outside, on the sidewalk side
    speed = walking_speed(rng)
    x_start = -L.mx(1.5) if rng.random() < 0.5 else L.width + L.mx(1.5)
    approach = [(x_start, sw_y), (x_in, sw_y), (x_in, out_y)]
    dist = sum(float(L.metres(b[0] - a[0], b[1] - a[1])) for a, b in zip(approach, approach[1:]))
    b = TrackBuilder(L, fps, s - int(round(dist / speed * fps)) - 1, *approach[0])
    b.walk(approach[1:], speed)
    # inside: wander to a few spots and crouch (tampering) or look around; total time ~ e - s
    inner = z.inflate(-L.mx(0.6), -L.my(0.6))
    budget = st.sec(e - s)
    inside_speed = rng.uniform(0.9, 1.3)
    pts = [(x_in, edge_y + (-L.my(0.6) if top else L.my(0.6)))]
    for _ in range(int(rng.integers(1, 4))):
        pts.append((rng.uniform(inner.x0, inner.x1), rng.uniform(inner.y0, inner.y1)))
    x_out = rng.uniform(z.x0 + 0.15 * z.w, z.x1 - 0.15 * z.w)
    exit_pt = (x_out, edge_y + (-L.my(0.3) if top else L.my(0.3)))

    def walk_time(p):
        route = [(x_in, out_y)] + p + [exit_pt, (x_out, out_y)]
        return sum(float(L.metres(b2[0] - a[0], b2[1] - a[1])) for a, b2 in zip(route, route[1:])) / inside_speed

    while len(pts) > 1 and walk_time(pts) > budget * 0.8:
        pts.pop()
    if walk_time(pts) > budget:                                # very short: step in and straight out
        inside_speed = max(inside_speed, walk_time(pts) * inside_speed / budget)
    spare = max(budget - walk_time(pts), 0.0)
    holds = rng.dirichlet(np.ones(len(pts))) * spare
    b = _retime(b, s - int(round(float(L.metres(0, out_y - edge_y)) / inside_speed * fps)))
    for p, hold in zip(pts, holds):
        b.walk_to(*p, inside_speed)
        if hold >= 0.2:
            b.hold(hold, crouch=1.0 if rng.random() < 0.5 else 0.0)
    b.walk_to(*exit_pt, inside_speed).walk_to(x_out, out_y, inside_speed)
    b.walk_to(x_out, sw_y, speed).walk_to(_edge_x(st, rng.uniform(0, L.width)), sw_y, speed * 1.1)
    person = Person(random_look(rng, bag_prob=0.2), b.build(), ev)

    def realise(_cars) -> Event:
        tr = person.track
        a, bnd = _interval(z.contains(tr.x, tr.y), tr.t0, st.n)
        return Event("Intrusion", a, bnd, z)
    return Staged(people=[person], realise=realise)


# --- Abandoned object --------------------------------------------------------
def _walk_in_and_crouch(st: Stage, point: Tuple[float, float], at: int, crouch: int, speed: float,
                        carry: bool) -> TrackBuilder:
    """A person walking in to ``point`` so that the middle of a ``crouch``-frame crouch falls on
    frame ``at``; they put down (carry=True) or pick up (carry=False) a bag there."""
    L, fps = st.L, st.fps
    route = _approach(st, point, _band_of(L, point[1]))
    dist = sum(float(L.metres(b[0] - a[0], b[1] - a[1])) for a, b in zip(route, route[1:]))
    builder = TrackBuilder(L, fps, at - crouch // 2 - 1 - int(round(dist / speed * fps)), *route[0], carry=carry)
    builder.walk(route[1:], speed)
    builder = _retime(builder, at - crouch // 2)
    _crouch(builder, crouch, switch_at=crouch // 2, carry_after=not carry)
    return builder


def stage_abandoned(st: Stage, s: int, e: int, ev: int, pickup: bool) -> Staged:
    rng, L = st.rng, st.L
    p = st.spot([*L.sidewalks, *L.plazas], [L.zone.inflate(L.mx(2.0), L.my(2.0))])
    if p is None:
        return Staged()
    look = random_look(rng, bag_prob=1.0, large_bag=True)
    h = look.height_m * L.ppm
    hand_dx = 0.11 * h * look.build                                # the bag hangs at the right hand
    crouch = st.frames(rng.uniform(1.0, 1.6))
    speed = walking_speed(rng)
    b = _walk_in_and_crouch(st, p, s, crouch, speed, carry=True)      # puts the bag down
    leave = _edge_x(st, rng.uniform(0, L.width))
    b.walk_to(p[0] + (L.mx(1.0) if leave > p[0] else -L.mx(1.0)), p[1] + L.my(rng.uniform(-0.8, 0.8)), speed * 1.2)
    b.walk_to(leave, b.pos[1], speed * 1.25)
    people = [Person(look, b.build(), ev)]
    obj = StaticObject(look.bag, p[0] + hand_dx, p[1], s, e if pickup else st.n, ev)
    if pickup:                                                      # someone takes it away later
        look2 = dataclasses.replace(random_look(rng, bag_prob=0.0), bag=look.bag)
        sp = walking_speed(rng)
        q = (p[0] + hand_dx - 0.11 * look2.height_m * L.ppm * look2.build, p[1])
        b2 = _walk_in_and_crouch(st, q, e, crouch, sp, carry=False)   # picks it up
        b2.walk_to(_edge_x(st, rng.uniform(0, L.width)), q[1], sp)
        people.append(Person(look2, b2.build(), ev))
    bw, bh = look.bag.w_m * L.ppm, look.bag.h_m * L.ppm

    def realise(_cars) -> Event:
        region = Rect(obj.x - bw / 2 - L.mx(0.5), obj.y - bh - L.my(0.5), obj.x + bw / 2 + L.mx(0.5),
                      obj.y + L.my(0.5)).clip(Rect(0, 0, L.width, L.height))
        return Event("Abandoned", max(obj.start, 0), min(obj.end, st.n), region)
    return Staged(people=people, objects=[obj], avoid=[Rect(obj.x - bw, obj.y - L.my(0.6), obj.x + bw,
                                                            obj.y + L.my(0.6))], realise=realise)


def _crouch(b: TrackBuilder, n: int, switch_at: int, carry_after: bool) -> None:
    """Crouch down and up over ``n`` frames; the carried bag changes hands at ``switch_at``."""
    x, y = b.pos
    prof = np.clip(4 * np.minimum(np.arange(n) + 1, n - np.arange(n)) / n, 0, 1)
    b.custom(np.full(switch_at, x), np.full(switch_at, y), crouch=prof[:switch_at])
    b.set_carry(carry_after)
    b.custom(np.full(n - switch_at, x), np.full(n - switch_at, y), crouch=prof[switch_at:])


# --- Wrong-way driving -------------------------------------------------------
def stage_wrong_way(st: Stage, s: int, e: int, ev: int) -> Staged:
    rng, L = st.rng, st.L
    lane = int(rng.integers(len(L.lanes)))
    span_m = L.width / L.ppm + 5.0
    speed = float(np.clip(span_m / max(st.sec(e - s), 0.5), 3.0, 14.0) * rng.uniform(0.9, 1.1))
    # oncoming traffic in that lane so that the car meets someone (brakes, swerves)
    extra = [(int(s + rng.uniform(-0.5, 0.6) * (e - s)), lane) for _ in range(int(rng.integers(1, 3)))]

    def realise(cars) -> Event:
        car = next((c for c in cars if c.event == ev), None)
        if car is None:
            return Event("WrongWay", 0, 0, Rect(0, 0, 0, 0))
        a, b = _interval(car.visible(L), car.t0, st.n)
        ln = L.lanes[lane]
        return Event("WrongWay", a, b, Rect(0, ln.y - ln.half - L.my(1.6) - 1.5 * L.ppm * (1 - L.k), L.width,
                                            ln.y + ln.half + L.my(1.6)).clip(Rect(0, 0, L.width, L.height)))
    return Staged(wrong_way=[WrongWayRequest(s, lane, speed, ev)], extra_cars=extra, realise=realise)


# --- Fire and smoke ----------------------------------------------------------
def stage_fire(st: Stage, s: int, e: int, ev: int) -> Staged:
    rng, L, fps = st.rng, st.L, st.fps
    # on open ground in the centre if there is room, else further out, else on a sidewalk (people detour)
    zone = [L.zone.inflate(L.mx(1.5), L.my(1.5))]
    wide = Rect(0.15 * L.width, 0, 0.85 * L.width, L.height)
    p = (st.spot(list(L.plazas), zone, top_margin_m=3.5) or st.spot(list(L.plazas), zone, 3.5, inside=wide)
         or st.spot(list(L.sidewalks), zone, top_margin_m=3.5))
    if p is None:
        return Staged()
    r_max = L.mx(rng.uniform(0.9, 2.0))
    n_t = int(rng.integers(6, 11))
    tongues = np.stack([rng.uniform(-0.8, 0.8, n_t), rng.uniform(1.2, 2.8, n_t), rng.uniform(0.3, 0.5, n_t),
                        rng.uniform(0, 2 * np.pi, n_t)], axis=1)
    delay = st.frames(0.3)
    rate = rng.uniform(5.0, 9.0) / fps                        # puffs per frame
    births = np.arange(s + delay, e, 1.0 / rate)
    m = len(births)
    wind = rng.uniform(-0.6, 0.6)
    smoke = np.stack([births, rng.uniform(-0.5, 0.5, m), L.ppm * rng.uniform(0.6, 1.4, m) / fps,
                      L.ppm * (wind + rng.normal(0, 0.2, m)) / fps, rng.uniform(3.0, 6.0, m) * fps,
                      rng.uniform(35, 105, m), rng.uniform(0.6, 0.85, m)], axis=1) if m else np.zeros((0, 7))
    fade = st.frames(1.0) if e < st.n else 1
    fire = Fire(p[0], p[1], s, e, r_max, st.frames(rng.uniform(1.5, 4.0)), tongues, smoke, fade, ev)

    def realise(_cars) -> Event:
        return Event("Fire", max(s, 0), min(e, st.n), fire.region(L))
    return Staged(fires=[fire], avoid=[Rect(p[0] - L.mx(3.0), p[1] - L.my(3.0), p[0] + L.mx(3.0), p[1] + L.my(3.0))],
                  realise=realise)


def stage_event(kind: str, st: Stage, s: int, e: int, ev: int, ends_in_clip: bool) -> Staged:
    if kind == "Fighting":
        return stage_fighting(st, s, e, ev)
    if kind == "Intrusion":
        return stage_intrusion(st, s, e, ev)
    if kind == "Abandoned":
        return stage_abandoned(st, s, e, ev, pickup=ends_in_clip)
    if kind == "WrongWay":
        return stage_wrong_way(st, s, e, ev)
    if kind == "Fire":
        return stage_fire(st, s, e, ev)
    raise ValueError(f"unknown event type {kind!r}; known: {', '.join(EVENT_TYPES)}")
