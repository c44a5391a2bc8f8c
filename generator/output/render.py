"""Stage 6: ProjectContext -> files on disk.

The target's cookiecutter template (templates/<target>/) renders into a temporary
directory beside the destination; the shared firmware core (firmware/*.j2 beside this module) is
rendered into the target's firmware folder; then the finished tree is moved into place.
A failure before the move leaves nothing behind.

Who owns what (the template's cookiecutter.json lists the user's files in `_user_owned`):

- The user's files (the application entry point, e.g. `main/main.cpp`, and config overlays)
  are written once, when the project is created, and never again: regeneration does not
  touch them, whatever they hold.
- Every other file tinygen writes is tinygen's, listed with its SHA-256 in the project's
  manifest. Regenerating (`force`) rewrites each one whose content changed, so the model's
  files are always consistent with each other; one the user edited is saved first as
  `<file>.user-backup`. A file whose content is unchanged is not rewritten (its timestamp
  stays, so builds stay incremental). A mix of files from different runs cannot build: each
  generated source checks the generation id of the header it includes.
- Anything else in the folder is the user's and is left alone; a new tinygen file that
  would land on one of them stops regeneration before anything is written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2

from ..errors import TinygenError

MANIFEST = ".tinygen-manifest.json"
# The firmware core's templates (firmware/<file>.j2); each lands as context["files"][stem] + ext,
# the public API header (tinygen_model.h) in context["public_dir"], the rest in "firmware_dir".
FIRMWARE_CORE = ("model_data.h", "model_data.cpp", "model_ops.h", "model_ops.cpp",
                 "tinygen_model.h", "tinygen_model.cpp", "golden_vectors.h",
                 "golden_vectors.cpp", "tinygen_platform.h")
PUBLIC_HEADER = "tinygen_model.h"
BACKUP_SUFFIX = ".user-backup"


@dataclass
class RenderedProject:
    path: Path
    files: list[str]  # every file of the project tinygen rendered (relative, sorted)
    user_files: list[str]  # the user's: created once, never rewritten
    written: list[str] = field(default_factory=list)  # written by this run
    unchanged: list[str] = field(default_factory=list)  # identical already: left as they were
    backups: list[tuple[str, str]] = field(default_factory=list)  # (tinygen's file, the user's edited copy)
    regenerated: bool = False


def template_dir(target_template: str) -> Path:
    """The installed template (the repository's templates/, packaged as `tinygen_templates`)."""
    path = Path(str(resources.files("tinygen_templates"))) / target_template
    if not (path / "cookiecutter.json").is_file():
        raise TinygenError(f"The {target_template} template is missing from this installation ({path}).")
    return path


NAME_PLACEHOLDER = "{{cookiecutter._tinygen.name}}"


def _contract(template: str) -> dict:
    return json.loads((template_dir(template) / "cookiecutter.json").read_text(encoding="utf-8"))


def user_owned_patterns(template: str, name: str) -> list[str]:
    """The template's `_user_owned` paths for project `name` (globs, relative to the project
    folder; the sketch's file name is the project's)."""
    return [pattern.replace(NAME_PLACEHOLDER, name) for pattern in _contract(template).get("_user_owned", [])]


def archive_path(template: str, name: str) -> str | None:
    """The template's `_archive`: where in the output a zip of the whole output goes (an
    Arduino library's, for `arduino-cli lib install --zip-path`), or None."""
    path = _contract(template).get("_archive")
    return path.replace(NAME_PLACEHOLDER, name) if path else None


def _write_archive(project: Path, archive: str, name: str) -> None:
    """A zip of the project's files under the top folder `name`, byte for byte the same for the
    same files (fixed dates, sorted), so that regeneration finds it unchanged."""
    import zipfile

    target = project / archive
    target.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in project.rglob("*") if p.is_file() and p != target)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in files:
            info = zipfile.ZipInfo(f"{name}/{path.relative_to(project).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, path.read_bytes())


def render_project(context: dict, blobs: dict[str, str], template: str, output_dir: Path,
                   force: bool = False, documents: dict[str, str] | None = None,
                   facts: dict | None = None) -> RenderedProject:
    """Render into `output_dir/<context['name']>`. `blobs` holds large pre-formatted text
    (model array, golden vectors) that the firmware templates place verbatim; `documents` are
    finished files for the project's top folder (e.g. MODEL_REPORT.md), tinygen's like the
    rest; `facts` go into the manifest for later commands (e.g. `tinygen profile`)."""
    output_dir = Path(output_dir)
    destination = output_dir / context["name"]
    previous = check_destination(destination, force)

    created_output_dir = not output_dir.exists()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tinygen-", dir=output_dir))
    except OSError as exc:
        raise TinygenError(f"Cannot write to output directory '{output_dir}': {exc.strerror}.") from None
    try:
        project = _render_cookiecutter(template_dir(template), context, staging)
        _render_firmware_core(context, blobs, project)
        for name, text in (documents or {}).items():
            (project / name).write_text(text, encoding="utf-8", newline="\n")
        archive = archive_path(template, context["name"])
        if archive:
            _write_archive(project, archive, context["name"])
        files = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
        patterns = user_owned_patterns(template, context["name"])
        user_files = [f for f in files if any(fnmatch.fnmatchcase(f, p) for p in patterns)]
        rendered = RenderedProject(path=destination, files=files, user_files=user_files,
                                   regenerated=previous is not None)
        if previous is None:
            _write_manifest(project, {f: _sha256(project / f) for f in files if f not in user_files}, user_files,
                            facts or {})
            if destination.exists():
                destination.rmdir()  # empty (checked above)
            os.replace(project, destination)
            rendered.written = files
        else:
            _update_in_place(project, destination, previous, rendered, facts or {})
    except OSError as exc:
        raise TinygenError(f"Writing the project to '{destination}' failed: {exc}.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_output_dir and not destination.exists():
            shutil.rmtree(output_dir, ignore_errors=True)
    return rendered


@dataclass
class PreviousRun:
    files: dict[str, str]  # tinygen's files -> SHA-256 as written
    user_files: list[str]


def read_manifest(project: Path) -> dict:
    """The manifest of the tinygen project in `project`."""
    path = project / MANIFEST
    if not path.is_file():
        raise TinygenError(f"'{project}' is not a tinygen project (no {MANIFEST}).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise TinygenError(f"'{path}' is unreadable: {exc}.") from None
    if not isinstance(data, dict):
        raise TinygenError(f"'{path}' is not a tinygen manifest.")
    return data


def check_destination(destination: Path, force: bool) -> PreviousRun | None:
    """None for a fresh destination, else what tinygen wrote there last time. Cheap: `new`
    calls it before any slow work."""
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        raise TinygenError(f"'{destination}' exists and is not a directory.")
    if not destination.exists() or not any(destination.iterdir()):
        return None
    if not force:
        raise TinygenError(
            f"'{destination}' already exists and is not empty.",
            hint="Choose another --name/--output, or pass --force to regenerate a project "
            "tinygen made (your application files are never touched).")
    manifest = destination / MANIFEST
    if not manifest.is_file():
        raise TinygenError(
            f"'{destination}' is not a tinygen project (no {MANIFEST}); refusing to write into "
            "it even with --force.", hint="Choose an empty or new output folder.")
    try:
        data = read_manifest(destination)
        files = {str(name): str(digest) for name, digest in data["files"].items()}
        return PreviousRun(files=files, user_files=[str(f) for f in data.get("user_files", [])])
    except (TinygenError, KeyError, AttributeError):
        raise TinygenError(f"'{manifest}' is unreadable; refusing to overwrite '{destination}'.") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edited(path: Path, generated_sha256: str) -> bool:
    """A generated file changed since tinygen wrote it (a deleted one is not edited)."""
    return path.is_file() and _sha256(path) != generated_sha256


def _backup_name(path: Path) -> Path:
    candidate, n = path.with_name(path.name + BACKUP_SUFFIX), 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}{BACKUP_SUFFIX}{n}")
    return candidate


def _update_in_place(project: Path, destination: Path, previous: PreviousRun, rendered: RenderedProject,
                     facts: dict) -> None:
    """Regenerate: the user's files stay; tinygen's are rewritten where their content changed."""
    user_files = set(rendered.user_files) | set(previous.user_files)
    ours = [f for f in rendered.files if f not in user_files]
    theirs = [f for f in ours if f not in previous.files and (destination / f).exists()]
    if theirs:
        raise TinygenError(
            f"Regenerating would overwrite file(s) in '{destination}' that tinygen did not write: "
            + ", ".join(theirs[:5]) + ("..." if len(theirs) > 5 else "") + ".",
            hint="Move those files away or choose another output folder.")
    manifest = {f: _sha256(project / f) for f in ours}
    for rel in rendered.files:
        source, target = project / rel, destination / rel
        if rel in user_files:
            if target.exists():
                continue  # the user's, whatever it holds
        elif target.is_file() and _sha256(target) == manifest[rel]:
            rendered.unchanged.append(rel)
            continue
        elif rel in previous.files and _edited(target, previous.files[rel]):
            backup = _backup_name(target)
            os.replace(target, backup)
            rendered.backups.append((rel, backup.relative_to(destination).as_posix()))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        rendered.written.append(rel)
    for rel in sorted(set(previous.files) - set(manifest) - user_files):
        stale = destination / rel
        if stale.is_file() and not _edited(stale, previous.files[rel]):
            stale.unlink()  # tinygen's, no longer generated, never edited
    _write_manifest(destination, manifest, sorted(user_files & set(rendered.files) | set(previous.user_files)),
                    facts)
    rendered.user_files = sorted(user_files & set(rendered.files))


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
        loader=jinja2.PackageLoader(__package__, "firmware"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _render_firmware_core(context: dict, blobs: dict[str, str], project: Path) -> None:
    env = _firmware_env()
    for name in FIRMWARE_CORE:
        stem, extension = name.split(".")
        folder = project / context["public_dir" if name == PUBLIC_HEADER else "firmware_dir"]
        folder.mkdir(parents=True, exist_ok=True)
        text = env.get_template(name + ".j2").render(t=context, **blobs)
        (folder / f"{context['files'][stem]}.{extension}").write_text(text, encoding="utf-8", newline="\n")


def _write_manifest(project: Path, entries: dict[str, str], user_files: list[str], facts: dict) -> None:
    """tinygen's files with the SHA-256 of what it wrote, so that a later regeneration can
    tell the user's edits from its own files, and the user's files, which it never rewrites;
    then what later commands need to know of this generation (`facts`)."""
    text = json.dumps({"generator": "tinygen", "files": dict(sorted(entries.items())),
                       "user_files": sorted(user_files)} | facts, indent=1) + "\n"
    path = project / MANIFEST
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
