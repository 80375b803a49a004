"""Cars of the synthetic world: looks, lane traffic with a car-following rule, wrong-way cars, drawing.

Traffic is simulated once per clip into per-frame x/lateral arrays (a ``Car``
each), so rendering a frame only indexes arrays. Cars stop for people on the
zebra crossing (``agents.zebra_busy``) and pull aside for a wrong-way car.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import draw
from .agents import Timeline, pick_colour, poisson_times
from .scene import Layout

_CARS = ((235, 235, 235), (180, 182, 188), (25, 25, 30), (170, 30, 30), (30, 60, 140), (40, 80, 60),
         (230, 190, 40), (110, 110, 115), (140, 90, 50))


@dataclass(frozen=True)
class CarLook:
    length_m: float
    width_m: float
    color: Tuple[float, float, float]


def random_car(rng: np.random.Generator) -> CarLook:
    van = rng.random() < 0.12
    return CarLook(float(rng.uniform(5.2, 6.0) if van else rng.uniform(3.9, 4.8)),
                   float(rng.uniform(1.9, 2.1) if van else rng.uniform(1.7, 1.9)), pick_colour(rng, _CARS, 12))


@dataclass
class Car(Timeline):
    look: CarLook
    lane: int
    direction: int               # +1 right, -1 left (wrong-way cars go against their lane)
    t0: int
    x: np.ndarray                # centre, px
    lat: np.ndarray              # lateral offset from the lane centre, px
    brake: np.ndarray            # bool
    event: Optional[int] = None
    hazard: Optional[np.ndarray] = None   # bool: hazard lights blinking (stopped for a wrong-way car)


    def visible(self, L: Layout) -> np.ndarray:
        """Frames where any part of it (its shadow included) is in the picture."""
        half = self.look.length_m * L.ppm / 2 + abs(L.sun[0]) * _car_rise(L) * 1.2 + 1.0
        return (self.x + half > 0) & (self.x - half < L.width)


@dataclass
class WrongWayRequest:
    frame: int                   # frame the car enters the picture
    lane: int
    speed: float                 # desired m/s
    event: int


@dataclass
class _SimCar:
    look: CarLook
    lane: int
    direction: int
    t0: int
    speed_des: float
    x: float                     # metres
    v: float
    lat: float = 0.0             # metres
    event: Optional[int] = None
    xs: list = field(default_factory=list)
    lats: list = field(default_factory=list)
    brakes: list = field(default_factory=list)
    hazards: list = field(default_factory=list)


def simulate_traffic(rng: np.random.Generator, L: Layout, fps: float, f0: int, f1: int, density: float,
                     busy: np.ndarray, wrong_way: Sequence[WrongWayRequest] = (),
                     extra: Sequence[Tuple[int, int]] = ()) -> List[Car]:
    """Cars per lane with a simple car-following rule: keep the gap, stop for people on the zebra,
    and stop and squeeze aside for a car coming the wrong way (which itself swerves to the kerb).

    ``extra``: (frame, lane) of additional normal cars (oncoming traffic for a wrong-way car).
    A car waits off-picture until its entry is clear, so a spawn can be late but never overlaps.
    """
    dt = 1.0 / fps
    width_m = L.width / L.ppm
    spawns = {li: list((poisson_times(rng, 0.12 * density, f0 / fps, f1 / fps) * fps).astype(int))
              for li in range(len(L.lanes))}
    for frame, li in extra:
        spawns[li].append(int(frame))
    # pending entries: (frame, look, speed factor, wrong-way request or None)
    pending = {li: sorted(((int(s), random_car(rng), rng.uniform(0.85, 1.15), None) for s in spawns[li]),
                          key=lambda e: e[0]) for li in spawns}
    ww_pending = sorted(((r.frame, random_car(rng), 1.0, r) for r in wrong_way), key=lambda e: e[0])
    active: List[_SimCar] = []
    done: List[_SimCar] = []
    zebra_x = ((L.zebra.x0 - L.mx(1.0)) / L.ppm, (L.zebra.x1 + L.mx(1.0)) / L.ppm)

    def entry_x(look: CarLook, d: int) -> float:
        return -look.length_m / 2 - 1.0 if d > 0 else width_m + look.length_m / 2 + 1.0

    def clear(li: int, look: CarLook, x_in: float) -> bool:
        return all(abs(c.x - x_in) > (c.look.length_m + look.length_m) / 2 + 4.0 for c in active if c.lane == li)

    for f in range(f0, f1):
        for li, lane in enumerate(L.lanes):
            q = pending[li]
            while q and q[0][0] <= f:
                _, look, fac, _ = q[0]
                x_in = entry_x(look, lane.direction)
                if not clear(li, look, x_in):
                    break                                   # wait at the edge: keeps order, no overlap
                q.pop(0)
                active.append(_SimCar(look, li, lane.direction, f, lane.speed * fac, x_in, lane.speed * fac))
        while ww_pending and ww_pending[0][0] <= f:
            _, look, _, r = ww_pending[0]
            d = -L.lanes[r.lane].direction
            if not clear(r.lane, look, entry_x(look, d)):
                break
            ww_pending.pop(0)
            active.append(_SimCar(look, r.lane, d, f, r.speed, entry_x(look, d), r.speed, event=r.event))
        for car in active:
            _step_car(car, active, L, busy[car.lane, f - f0], zebra_x, dt)
        still = []
        for car in active:
            half = car.look.length_m / 2
            gone = (car.direction > 0 and car.x - half > width_m + 1.5) or (car.direction < 0 and car.x + half < -1.5)
            (done if gone else still).append(car)
        active = still
    out = []
    for c in done + active:
        if not c.xs:
            continue
        out.append(Car(c.look, c.lane, c.direction, c.t0, np.asarray(c.xs, np.float32) * L.ppm,
                       np.asarray(c.lats, np.float32) * L.ppm * L.k, np.asarray(c.brakes, bool), c.event,
                       np.asarray(c.hazards, bool)))
    return out


def _step_car(car: _SimCar, cars: Sequence[_SimCar], L: Layout, zebra_busy_now: bool, zebra_x, dt: float) -> None:
    d = car.direction
    lane = L.lanes[car.lane]
    lane_dir = lane.direction
    wrong = d != lane_dir
    front = car.x + d * car.look.length_m / 2
    gap, cap, lat_target, hazard = 1e9, car.speed_des, 0.0, False
    outer = -1.0 if car.lane == 0 else 1.0            # towards this lane's kerb
    for o in cars:
        if o is car or o.lane != car.lane:
            continue
        ahead = (o.x - car.x) * d
        if ahead <= 0:
            continue
        bumper_gap = ahead - (o.look.length_m + car.look.length_m) / 2
        lateral_ok = abs((o.lat - car.lat)) * 1.0 >= (o.look.width_m + car.look.width_m) / 2 + 0.1
        if o.direction == d:                           # follow the car in front
            gap = min(gap, bumper_gap - 2.0)
        else:      # head-on: the wrong-way car squeezes by at the kerb; oncoming cars pull aside and wait
            if bumper_gap < 30.0:
                lat_target = outer * (1.7 if wrong else -0.7)
                if wrong:
                    cap = min(cap, 5.0 if bumper_gap < 12.0 else car.speed_des * 0.7)
                else:
                    cap, hazard = (0.0, True) if bumper_gap < 25.0 else (min(cap, car.speed_des * 0.5), False)
            if not lateral_ok and bumper_gap < 40.0:
                gap = min(gap, bumper_gap - 3.0)
    if zebra_busy_now:
        stop = zebra_x[0] if d > 0 else zebra_x[1]
        dist = (stop - front) * d
        if dist > -0.5 and car.v * car.v / (2 * 7.0) < dist + 0.5:
            gap = min(gap, dist)
    v_gap = math.sqrt(2 * 4.0 * max(gap, 0.0)) if gap < 1e8 else 1e9
    target = min(car.speed_des, cap, v_gap)
    v = min(max(target, car.v - 8.0 * dt), car.v + 2.0 * dt)
    v = max(v, 0.0)
    brake = v < car.v - 0.5 * dt
    car.v = v
    car.x += d * v * dt
    step = 1.2 * dt
    car.lat += float(np.clip(lat_target - car.lat, -step, step))
    car.xs.append(car.x)
    car.lats.append(car.lat)
    car.brakes.append(brake or v < 0.3)
    car.hazards.append(hazard or (bool(car.hazards) and car.hazards[-1] and v < 1.0))


def _car_rise(L: Layout) -> float:
    """How far a car's roof appears above its footprint, px (more for a steeper view)."""
    return 1.45 * L.ppm * (1 - L.k) * 0.8


def draw_car(img: np.ndarray, L: Layout, car: Car, i: int) -> None:
    lk = car.look
    x, y = float(car.x[i]), L.lanes[car.lane].y + float(car.lat[i])
    hl, wg, up = lk.length_m * L.ppm / 2, lk.width_m * L.ppm * L.k / 2, _car_rise(L)
    d = car.direction
    sx, sy = L.sun
    draw.rect(img, x - hl + sx * up * 1.2, y - wg + sy * up * 1.5, x + hl + sx * up * 1.2, y + wg + sy * up * 1.5,
              (0, 0, 0), 0.35)
    side = tuple(v * 0.72 for v in lk.color)
    draw.rect(img, x - hl, y - wg - up * 0.5, x + hl, y + wg, side)                  # body sides
    draw.rect(img, x - hl * 0.97, y - wg - up, x + hl * 0.97, y + wg - up * 0.6, lk.color)  # top
    glass = (45, 55, 70)
    fw = (x + d * hl * 0.35, x + d * hl * 0.1)                                         # windscreen
    draw.rect(img, min(fw), y - wg * 0.85 - up, max(fw), y + wg * 0.85 - up * 0.6, glass)
    rw = (x - d * hl * 0.62, x - d * hl * 0.8)                                         # rear window
    draw.rect(img, min(rw), y - wg * 0.8 - up, max(rw), y + wg * 0.8 - up * 0.6, glass, 0.9)
    lamp = max(L.ppm * 0.25, 1.0)
    fx0 = x + d * hl - (lamp if d > 0 else 0)
    for yy in (y - wg * 0.7 - up * 0.4, y + wg * 0.7 - up * 0.4 - lamp):
        draw.rect(img, fx0, yy, fx0 + lamp, yy + lamp, (250, 245, 210))
        bx0 = x - d * hl - (0 if d > 0 else lamp)
        tail = (255, 40, 30) if car.brake[i] else (150, 25, 25)
        draw.rect(img, bx0, yy, bx0 + lamp, yy + lamp, tail)
        if car.brake[i]:
            draw.glow(img, bx0 + lamp / 2, yy + lamp / 2, lamp * 2.5, lamp * 2.0, (120, 10, 0), 0.8)
    if car.hazard is not None and car.hazard[i] and (i // 8) % 2 == 0:      # ~1.5 Hz blinkers
        for cx in (x - hl + lamp, x + hl - lamp):
            for cy in (y - wg - up * 0.4, y + wg - up * 0.4):
                draw.glow(img, cx, cy, lamp * 3.0, lamp * 2.5, (255, 150, 0), 0.9)
