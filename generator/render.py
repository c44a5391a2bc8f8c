"""Stage 6: ProjectContext -> files on disk.

The target's cookiecutter template (templates/<target>/) renders into a temporary
directory beside the destination; the shared firmware core (generator/firmware/*.j2) is
rendered into the target's firmware folder; then the finished tree is moved into place.
A failure at any point leaves nothing behind. An existing project is only replaced when
`force` is given, and then only files tinygen generated (listed with their hashes in its
manifest) are replaced or removed; anything else in the folder is the user's and is left
alone. A generated file the user has edited since (its hash differs) is the user's too: it
is kept, and the new version is written beside it as `<file>.tinygen-new`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from .errors import TinygenError

MANIFEST = ".tinygen-manifest.json"
FIRMWARE_CORE = ("model_data.h", "model_data.cpp", "model_ops.h", "model_ops.cpp",
                 "tinygen_model.h", "tinygen_model.cpp", "golden_vectors.h",
                 "golden_vectors.cpp", "tinygen_platform.h")


EDITED_SUFFIX = ".tinygen-new"


@dataclass
class RenderedProject:
    path: Path
    files: list[str]  # relative paths, sorted
    kept: list[str]  # generated files the user had edited: kept, new version beside them


def template_dir(target_template: str) -> Path:
    try:
        root = Path(str(resources.files("tinygen_templates")))
    except ModuleNotFoundError:  # running from a source checkout that is not installed
        root = Path(__file__).resolve().parent.parent / "templates"
    path = root / target_template
    if not (path / "cookiecutter.json").is_file():
        raise TinygenError(f"The {target_template} template is missing from this installation ({path}).")
    return path


def render_project(context: dict, blobs: dict[str, str], template: str, firmware_dir: str,
                   output_dir: Path, force: bool = False) -> RenderedProject:
    """Render into `output_dir/<context['name']>`. `blobs` holds large pre-formatted text
    (model array, golden vectors) that the firmware templates place verbatim."""
    output_dir = Path(output_dir)
    destination = output_dir / context["name"]
    previous = _check_destination(destination, force)

    created_output_dir = not output_dir.exists()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tinygen-", dir=output_dir))
    except OSError as exc:
        raise TinygenError(f"Cannot write to output directory '{output_dir}': {exc.strerror}.") from None
    try:
        project = _render_cookiecutter(template_dir(template), context, staging)
        _render_firmware_core(context, blobs, project / firmware_dir)
        files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
        manifest = {f: _sha256(project / f) for f in files}
        kept: list[str] = []
        if previous is not None:
            _check_collisions(destination, previous, files)
            kept = [f for f in files if f in previous and _edited(destination / f, previous[f])]
            for f in kept:  # the user's version stays; tinygen's goes beside it
                os.replace(project / f, project / (f + EDITED_SUFFIX))
                manifest[f + EDITED_SUFFIX] = manifest[f]
        _write_manifest(project, manifest)
        _move_into_place(project, destination, previous)
    except OSError as exc:
        raise TinygenError(f"Writing the project to '{destination}' failed: {exc}.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_output_dir and not destination.exists():
            shutil.rmtree(output_dir, ignore_errors=True)
    return RenderedProject(path=destination, files=files + [MANIFEST], kept=kept)


def _check_destination(destination: Path, force: bool) -> dict[str, str] | None:
    """None for a fresh destination, else the files tinygen wrote there last time, each
    with the SHA-256 it had when written."""
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        raise TinygenError(f"'{destination}' exists and is not a directory.")
    if not destination.exists() or not any(destination.iterdir()):
        return None
    if not force:
        raise TinygenError(
            f"'{destination}' already exists and is not empty.",
            hint="Choose another --name/--output, or pass --force to regenerate a project "
            "tinygen made (only files tinygen wrote are replaced).")
    manifest = destination / MANIFEST
    if not manifest.is_file():
        raise TinygenError(
            f"'{destination}' is not a tinygen project (no {MANIFEST}); refusing to write into "
            "it even with --force.", hint="Choose an empty or new output folder.")
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        return {str(name): str(digest) for name, digest in files.items()}
    except (ValueError, KeyError, OSError, AttributeError):
        raise TinygenError(f"'{manifest}' is unreadable; refusing to overwrite '{destination}'.") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edited(path: Path, generated_sha256: str) -> bool:
    """A generated file changed since tinygen wrote it (a deleted one is not kept)."""
    return path.is_file() and _sha256(path) != generated_sha256


def _check_collisions(destination: Path, previous: dict[str, str], files: list[str]) -> None:
    theirs = [f for f in files if f not in previous and (destination / f).exists()]
    if theirs:
        raise TinygenError(
            f"--force would overwrite file(s) in '{destination}' that tinygen did not write: "
            + ", ".join(theirs[:5]) + ("..." if len(theirs) > 5 else "") + ".",
            hint="Move those files away or choose another output folder.")


def _render_cookiecutter(template: Path, context: dict, staging: Path) -> Path:
    from cookiecutter.generate import generate_context, generate_files

    # generate_context + generate_files (not cookiecutter()) so no user config is read and
    # no replay file is written to the user's home directory.
    # cookiecutter.json's `_tinygen` is an example documenting the keys the template reads;
    # the real context replaces it whole (cookiecutter would merge it key by key, letting
    # example values leak into projects).
    cc_context = generate_context(context_file=str(template / "cookiecutter.json"))
    cc_context["cookiecutter"]["_tinygen"] = context
    cc_context["cookiecutter"]["_template"] = str(template)
    project = generate_files(repo_dir=str(template), context=cc_context,
                             output_dir=str(staging), overwrite_if_exists=False)
    return Path(project)


def _firmware_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("generator", "firmware"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _render_firmware_core(context: dict, blobs: dict[str, str], folder: Path) -> None:
    env = _firmware_env()
    folder.mkdir(parents=True, exist_ok=True)
    for name in FIRMWARE_CORE:
        text = env.get_template(name + ".j2").render(t=context, **blobs)
        (folder / name).write_text(text, encoding="utf-8", newline="\n")


def _write_manifest(project: Path, entries: dict[str, str]) -> None:
    """Every file tinygen wrote, with the SHA-256 of what it wrote (for a kept file: of the
    version beside it), so a later --force can tell the user's edits from its own files."""
    (project / MANIFEST).write_text(
        json.dumps({"generator": "tinygen", "files": dict(sorted(entries.items()))}, indent=1) + "\n",
        encoding="utf-8")


def _move_into_place(project: Path, destination: Path, previous: dict[str, str] | None) -> None:
    if previous is None:
        if destination.exists():
            destination.rmdir()  # empty (checked above)
        os.replace(project, destination)
        return
    # Regenerating: replace tinygen's files one by one, drop the ones no longer generated.
    new_files = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    for rel in sorted(new_files):
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(project / rel, target)
    for rel in sorted(set(previous) - new_files):
        stale = destination / rel
        if stale.is_file() and not _edited(stale, previous[rel]):
            stale.unlink()
