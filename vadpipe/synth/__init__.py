"""The synthetic surveillance world behind ``vadpipe synth`` and ``vadpipe demo``.

Modules, lowest first (each imports only those above it):

- ``draw``: antialiased raster primitives drawn in place on uint8 RGB frames.
- ``scene``: a camera's layout (plazas, road, footpath, zone), palette and static background.
- ``agents``: people and objects: how they move and how they are drawn.
- ``cars``: cars: looks, lane traffic (stopping for the zebra, wrong-way cars), drawing.
- ``events``: the five anomaly types staged on a clip, labels read back from what was drawn.
- ``clip``: one clip's plan (scene, agents, events, lighting) and its frames.
- ``world``: a whole world: config, split plan, MP4s, ground-truth files, ``world.json``.
"""
from .clip import ClipSpec, plan_clip, render_frames
from .events import EVENT_TYPES
from .world import SynthConfig, generate_world, gt_document, plan_world, synth_config, ucf_annotation_text, write_clip

__all__ = ["EVENT_TYPES", "ClipSpec", "SynthConfig", "generate_world", "gt_document", "plan_clip", "plan_world",
           "render_frames", "synth_config", "ucf_annotation_text", "write_clip"]
