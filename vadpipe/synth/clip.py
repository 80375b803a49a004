"""One synthetic clip: its spec, its plan (scene, actors, events) and its frames.

``plan_clip(spec)`` is deterministic in ``spec``. A *camera* seed fixes the
scene (layout, colours, textures, decorations) as a fixed surveillance camera
would; the clip seed drives independent random streams for pedestrians,
density, events, cars and lighting, so clips of one camera differ in
everything that moves. ``render_frames(plan)`` draws it; ``hide_events=True`` draws
the same clip with every event actor left out (same noise, same normal
traffic), which is how tests check that each event is visible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from .agents import Person, StaticObject, draw_person, plan_pedestrians, zebra_busy
from .cars import Car, draw_car, simulate_traffic
from .events import EVENT_TYPES, Event, Fire, Stage, stage_event
from .scene import Layout, Palette, make_layout, make_palette, render_background

PRE_ROLL_S = 35.0          # simulated before frame 0 so the street is already busy when the clip starts
NORMAL_FOLDER = "normal"


@dataclass(frozen=True)
class ClipSpec:
    name: str                      # file stem, unique in the world, e.g. "fire_003"
    split: str                     # "train" or "test"
    cls: Optional[str]             # event type, None for a normal clip
    seed: int
    frames: int
    width: int
    height: int
    fps: int = 25
    n_events: int = 0
    camera: int = 0                # which fixed camera (scene) of the world
    camera_seed: Optional[int] = None   # None: the scene comes from ``seed`` (a one-off camera)

    @property
    def folder(self) -> str:
        return self.cls or NORMAL_FOLDER

    @property
    def video_id(self) -> str:
        """The id ``vadpipe extract`` gives the file when it scans the split folder."""
        return f"{self.folder}/{self.name}"

    @property
    def relpath(self) -> str:
        return f"{self.split}/{self.folder}/{self.name}.mp4"


@dataclass
class Lighting:
    gain: float
    tint: Tuple[float, float, float]
    drift_amp: float
    drift_period_s: float
    drift_phase: float
    noise_sigma: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v])
                for k, v in self.__dict__.items()}


@dataclass
class ClipPlan:
    spec: ClipSpec
    layout: Layout
    palette: Palette
    background: np.ndarray
    people: List[Person]
    cars: List[Car]
    objects: List[StaticObject]
    fires: List[Fire]
    events: List[Event]
    lighting: Lighting
    noise_seed: int
    density: float
    attempt: int = 0
    extra: dict = field(default_factory=dict)

    def intervals(self) -> List[List[int]]:
        """Event windows merged where they overlap, sorted; [start, end) frames."""
        out: List[List[int]] = []
        for ev in sorted(self.events, key=lambda e: e.start):
            if out and ev.start <= out[-1][1]:
                out[-1][1] = max(out[-1][1], ev.end)
            else:
                out.append([ev.start, ev.end])
        return out


def events_that_fit(n: int, fps: float, k: int) -> int:
    """Two events need two separate windows of at least a second each: not in clips under 4.5 s."""
    return 1 if k >= 2 and n < int(0.5 * fps) + 4 * int(fps) else min(k, 2)


def schedule(rng: np.random.Generator, n: int, fps: float, k: int, kind: Optional[str]):
    """Target windows [(start, end, ends_in_clip)] for ``k`` events of ``kind`` in ``n`` frames.

    Durations run from one second to most of the clip (skewed towards short);
    an abandoned object or a fire may last until the clip ends.
    """
    k = events_that_fit(n, fps, k)
    if k <= 0:
        return []
    one, lead = int(fps), int(0.5 * fps)
    if k == 1:
        segments = [(lead, n)]
    else:
        cut = int(rng.uniform(0.4, 0.6) * n)
        segments = [(lead, cut - one // 2), (cut + one // 2, n)]
    out = []
    for i, (a, b) in enumerate(segments):
        avail = b - a
        longest = max(int(0.85 * avail), one)
        d = min(int(one + (longest - one) * rng.random() ** 1.3), avail)
        last = i == len(segments) - 1
        if last and kind in ("Abandoned", "Fire") and rng.random() < 0.6:
            s, e = max(n - d, a), n
        else:
            s = int(rng.integers(a, max(b - d, a) + 1))
            e = min(s + d, n if last else b)
        out.append((s, e, e < n))
    return out


def plan_clip(spec: ClipSpec, attempts: int = 6) -> ClipPlan:
    """Plan a clip; re-plan (deterministically) when an event could not be staged visibly."""
    if spec.cls is not None and spec.cls not in EVENT_TYPES:
        raise ConfigError(f"unknown event type {spec.cls!r}; known: {', '.join(EVENT_TYPES)}")
    min_len = max(int(0.5 * spec.fps), 1)
    want = events_that_fit(spec.frames, spec.fps, spec.n_events)
    best = None
    for attempt in range(attempts):
        plan = _plan_once(spec, attempt)
        ok = [e for e in plan.events if e.end - e.start >= min_len]
        if len(ok) == len(plan.events) == want:
            return plan
        if ok and (best is None or len(ok) > len(best.events)):
            plan.events = ok
            best = plan
    if best is None and spec.n_events:
        raise ConfigError(f"{spec.name}: could not stage a {spec.cls} event in {spec.frames} frames "
                          f"at {spec.width}x{spec.height} (clip too short or too small?)")
    return best or plan


def _plan_once(spec: ClipSpec, attempt: int) -> ClipPlan:
    scene = np.random.SeedSequence([spec.seed if spec.camera_seed is None else spec.camera_seed, 1]).spawn(2)
    r_layout, r_bg = (np.random.default_rng(s) for s in scene)
    streams = np.random.SeedSequence([spec.seed, attempt]).spawn(4)
    r_people, r_events, r_cars, r_light = (np.random.default_rng(s) for s in streams)
    fps, n = spec.fps, spec.frames
    layout = make_layout(r_layout, spec.width, spec.height)
    palette = make_palette(r_layout)
    density = float(r_light.uniform(0.4, 1.6))
    car_density = float(r_light.uniform(0.4, 1.6))
    stage = Stage(r_events, layout, fps, n)
    staged = [stage_event(spec.cls, stage, s, e, i, ends)
              for i, (s, e, ends) in enumerate(schedule(r_events, n, fps, spec.n_events, spec.cls))]
    f0 = -int(PRE_ROLL_S * fps)
    people = plan_pedestrians(r_people, layout, fps, f0 / fps, n / fps, density,
                              [r for sg in staged for r in sg.avoid])
    people += [p for sg in staged for p in sg.people]
    busy = zebra_busy(layout, people, f0, n)
    cars = simulate_traffic(r_cars, layout, fps, f0, n, car_density, busy,
                            [w for sg in staged for w in sg.wrong_way], [c for sg in staged for c in sg.extra_cars])
    events = [sg.realise(cars) for sg in staged if sg.realise is not None]
    events = [e for e in events if e.end > e.start]
    lighting = Lighting(float(r_light.uniform(0.85, 1.1)), tuple(float(v) for v in 1 + r_light.uniform(-0.05, 0.05, 3)),
                        float(r_light.uniform(0.02, 0.06)), float(r_light.uniform(15, 50)),
                        float(r_light.uniform(0, 2 * math.pi)), float(r_light.uniform(1.5, 3.5)))
    return ClipPlan(spec, layout, palette, render_background(layout, palette, r_bg),
                    [p for p in people if p.track.t1 > 0 and p.track.t0 < n],
                    [c for c in cars if c.t1 > 0 and c.t0 < n],
                    [o for sg in staged for o in sg.objects], [f for sg in staged for f in sg.fires],
                    events, lighting, int(r_light.integers(2 ** 31)), density, attempt,
                    {"car_density": car_density})


_NOISE_BANK = 6


def render_frames(plan: ClipPlan, hide_events: bool = False, start: int = 0,
                  stop: Optional[int] = None) -> Iterator[np.ndarray]:
    """Frames [start, stop) as uint8 (H, W, 3) RGB. Deterministic; ``hide_events`` leaves event actors out."""
    L, spec, lt = plan.layout, plan.spec, plan.lighting
    stop = spec.frames if stop is None else min(stop, spec.frames)
    rng = np.random.default_rng(plan.noise_seed)
    bank = rng.normal(0.0, lt.noise_sigma, size=(_NOISE_BANK, L.height, L.width, 3)).astype(np.float32)
    pick = rng.integers(_NOISE_BANK, size=spec.frames)
    shimmer = rng.normal(0.0, 0.004, size=spec.frames)         # tiny per-frame exposure jitter
    shown = (lambda ev: ev is None) if hide_events else (lambda ev: True)
    people = [p for p in plan.people if shown(p.event)]
    cars = [c for c in plan.cars if shown(c.event)]
    objects = [o for o in plan.objects if shown(o.event)]
    fires = [f for f in plan.fires if shown(f.event)]
    margin = L.ppm * 2.5
    car_visible = [c.visible(L) for c in cars]
    buf = np.empty((L.height, L.width, 3), np.float32)
    for f in range(start, stop):
        img = plan.background.copy()
        for fire in fires:
            fire.draw_ground(img, L, f)
        sprites = []
        for p in people:
            i = p.track.index(f)
            if i is not None and -margin < p.track.x[i] < L.width + margin:
                sprites.append((float(p.track.y[i]), draw_person, p, i))
        for c, vis in zip(cars, car_visible):
            i = c.index(f)
            if i is not None and vis[i]:
                sprites.append((L.lanes[c.lane].y + float(c.lat[i]) + L.my(c.look.width_m / 2), draw_car, c, i))
        for o in objects:
            if o.start <= f < o.end:
                sprites.append((o.y, lambda im, _L, obj, _i: obj.draw(im, _L), o, 0))
        for fire in fires:
            if fire.start <= f < fire.end:
                sprites.append((fire.y, lambda im, _L, fr, k: fr.draw_flames(im, _L, k), fire, f))
        sprites.sort(key=lambda s: s[0])
        for _, fn, obj, i in sprites:
            fn(img, L, obj, i)
        for fire in fires:
            fire.draw_smoke(img, L, f)
        gain = lt.gain * (1 + lt.drift_amp * math.sin(2 * math.pi * f / (lt.drift_period_s * spec.fps) + lt.drift_phase)
                          + shimmer[f])
        np.multiply(img, np.asarray(lt.tint, np.float32) * np.float32(gain), out=buf)
        buf += bank[pick[f]]
        np.clip(buf, 0, 255, out=buf)
        yield buf.astype(np.uint8)
