"""Build a Lambda layer zip of the forewarm decorator.

Lambda puts a layer's `python/` directory on the import path of Python
functions, so the zip holds `python/forewarm/__init__.py`.
Usage: python build_layer.py [OUT.zip]   (default: dist/forewarm-layer.zip)
"""
import pathlib
import sys
import zipfile

HERE = pathlib.Path(__file__).resolve().parent


def build(out):
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    src = HERE / "src" / "forewarm"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in sorted(src.rglob("*.py")):
            # A fixed timestamp keeps the zip byte-identical from build to build.
            info = zipfile.ZipInfo(str(pathlib.Path("python/forewarm") / f.relative_to(src)), (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, f.read_bytes())
    return out


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else HERE / "dist" / "forewarm-layer.zip"))
