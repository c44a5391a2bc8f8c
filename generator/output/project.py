"""A prepared model -> the project on disk: the template context, the firmware core, the
model's report (MODEL_REPORT.md) and what later commands need in the manifest. The one path
`tinygen new` (and the tests) write projects through."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..pipeline import Prepared
from . import report as views
from .context import build_context, golden_arrays, model_array, template_name
from .profile import project_facts
from .render import RenderedProject, render_project


@dataclass
class WrittenProject:
    rendered: RenderedProject
    inspection: views.Inspection
    context: dict


def write_project(prepared: Prepared, name: str, output_dir: Path, force: bool = False,
                  profile: bool = False, library: bool = False, shared_arena: bool = False) -> WrittenProject:
    """A project (`--as project`) or the ecosystem's library for the model (`--as library`)."""
    context = build_context(prepared, name, profile=profile, library=library, shared_arena=shared_arena)
    blobs = {"model_array": model_array(prepared), "golden_arrays": golden_arrays(prepared.golden)}
    inspection = views.inspect(prepared)
    summary = views.to_dict(inspection)
    facts = project_facts(summary["layers"], summary["latency_estimate"], context["generation"],
                          prepared.board.target, prepared.board.id)
    template = template_name(prepared.board, library)
    rendered = render_project(context, blobs, template, output_dir, force,
                              documents={views.REPORT_FILE: views.to_markdown(inspection)}, facts=facts)
    return WrittenProject(rendered=rendered, inspection=inspection, context=context)
