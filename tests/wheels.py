"""Tiny wheels for the environment tests: a local package index (a folder uv reads with
UV_FIND_LINKS and no registry), so resolving and building --env environments runs offline, in
seconds, and every test decides which versions exist."""

import base64
import hashlib
import zipfile
from pathlib import Path


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel(
    folder: Path, name: str, version: str, files: dict[str, str] | None = None, requires: tuple[str, ...] = ()
) -> Path:
    """A pure-Python wheel of distribution `name` at `version` in `folder`: a module of the same
    name (its __version__ set) unless `files` ({path in the wheel: text}) says otherwise."""
    module = name.replace("-", "_")
    files = files if files is not None else {f"{module}/__init__.py": f"__version__ = {version!r}\n"}
    info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    contents = {
        **files,
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_digest(text.encode())},{len(text.encode())}\n" for path, text in contents.items())
    contents[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for inner, text in contents.items():
            z.writestr(inner, text)
    return path


def local_index(monkeypatch, tmp_path: Path, versions: dict[str, tuple[str, ...]], own_cache: bool = True) -> Path:
    """A folder of wheels ({distribution: its versions}) that uv resolves from offline (no registry;
    with own_cache an empty uv cache, so nothing else exists; else uv's cache too, what installing
    this project left there), and an empty environment cache: under tmp_path, set in the environment."""
    index = tmp_path / "index"
    for name, vs in versions.items():
        for v in vs:
            wheel(index, name, v)
    monkeypatch.setenv("UV_FIND_LINKS", str(index))
    monkeypatch.setenv("UV_OFFLINE", "1")
    if own_cache:
        monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("BENCH_ENV_CACHE", str(tmp_path / "envs"))
    return index
