"""The decorator ships as a wheel and as a Lambda layer; both must work."""

import json
import pathlib
import subprocess
import sys
import zipfile

HERE = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
import build_layer  # noqa: E402

# A handler module as a user writes it, and a ping through it.
HANDLER = """
import json, sys
from forewarm import warmer

@warmer
def handler(event, context):
    return {"real": event}

print(json.dumps([handler({"warmer": True, "delay": 0}, None), handler({"path": "/"}, None)]))
"""


def run_with_path(path):
    out = subprocess.run([sys.executable, "-S", "-c", HANDLER], env={"PYTHONPATH": str(path)},
                         capture_output=True, text=True, check=True)
    lines = [l for l in out.stdout.splitlines() if l.startswith("[")]
    return json.loads(lines[-1])


def check(result):
    ping, real = result
    assert ping["forewarm"]["v"] == 1 and ping["forewarm"]["cold"] is True
    assert real == {"real": {"path": "/"}}


def test_the_wheel_builds_and_installs(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(HERE)], check=True)
    wheels = list(tmp_path.glob("forewarm-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "forewarm/__init__.py" in names
    # A wheel is a zip that can be put on the path directly.
    check(run_with_path(wheels[0]))


def test_the_layer_zip_has_the_layout_lambda_expects(tmp_path):
    out = build_layer.build(tmp_path / "layer.zip")
    z = zipfile.ZipFile(out)
    assert z.namelist() == ["python/forewarm/__init__.py"]
    z.extractall(tmp_path / "opt")
    check(run_with_path(tmp_path / "opt" / "python"))
    again = build_layer.build(tmp_path / "again.zip")
    assert again.read_bytes() == out.read_bytes(), "reproducible"
