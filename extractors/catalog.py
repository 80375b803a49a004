"""What `vadpipe backbones` shows: each registered backbone, its weights and whether they are here."""
from __future__ import annotations

from typing import Dict, List

from .registry import list_backbones


def backbone_rows() -> List[Dict[str, object]]:
    rows = []
    for name, entry in sorted(list_backbones().items()):
        cfg = entry.config
        local = entry.default_weights()
        rows.append({
            "name": name,
            "feature_dim": cfg.feature_dim,
            "input": f"values {cfg.value_range[0]:g}..{cfg.value_range[1]:g}, mean {cfg.mean[0]:g}, "
                     f"std {cfg.std[0]:g}, min {cfg.min_frames} frames",
            "weights_source": cfg.weights_source,
            "weights_local": str(local) if local else None,
            "description": cfg.description,
            "layers": [f"{layer} ({dim})" for layer, dim in cfg.layers],
        })
    return rows


def format_rows(rows: List[Dict[str, object]]) -> str:
    lines = []
    for row in rows:
        local = row["weights_local"] or "not available locally (pass --weights FILE)"
        lines += [f"{row['name']}  ({row['feature_dim']}-d)  {row['description']}",
                  f"  input:    {row['input']}",
                  f"  weights:  {row['weights_source']}",
                  f"  local:    {local}"]
        if row["layers"]:
            lines.append(f"  layers:   {', '.join(row['layers'])} (extract --layers)")
    return "\n".join(lines)
