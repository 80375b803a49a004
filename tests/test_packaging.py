"""The three folders install as one distribution with one import namespace, from any directory."""
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = ("import vadpipe, vadpipe.extractors, vadpipe.models, vadpipe.synth, vadpipe.cli; "
           "print(vadpipe.extractors.__file__)")


def test_installed_package_imports_outside_repo(tmp_path):
    out = subprocess.run([sys.executable, "-c", IMPORTS], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("extractors/__init__.py")


def test_every_package_folder_is_listed_in_setup_cfg():
    # The quick suite's guard for what the slow wheel test proves: a subpackage left out of
    # setup.cfg still imports from an editable checkout but is missing from the wheel.
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    dirs = dict(line.split("=") for line in cfg["options"]["package_dir"].strip().splitlines())
    found = set()
    for name, folder in ((k.strip(), ROOT / v.strip()) for k, v in dirs.items()):
        found |= {".".join([name, *init.parent.relative_to(folder).parts])
                  for init in folder.rglob("__init__.py")}
    assert found == listed


@pytest.mark.slow  # builds and installs a wheel
@pytest.mark.timeout(900)
def test_regular_wheel_install_imports_outside_repo(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(wheel_dir), str(ROOT)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(build.stderr[-2000:])
    wheel = next(wheel_dir.glob("vadpipe-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    # Only the wheel's copy may be importable: run with an isolated path from a neutral folder.
    code = f"import sys; sys.path.insert(0, {str(target)!r}); {IMPORTS}"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target))


def test_python_dash_m_runs_the_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vadpipe", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and "info" in out.stdout
