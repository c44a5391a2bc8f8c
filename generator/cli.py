"""The `tinygen` command line: thin Click commands over the library functions.

Exit codes, for CI jobs to gate on: 0 done; 1 a user-fixable error (a TinygenError or a bad
option value: one message, no traceback) or a negative verdict (the model does not fit or
cannot run on the board asked about, `verify` found a deployment bug); 2 a malformed command
line (unknown option, missing argument); 3 an internal error in tinygen (the traceback with
TINYGEN_DEBUG=1); 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .boards import catalog as boards
from .errors import TinygenError
from .model.convert import QUANTIZATIONS
from .progress import TerminalProgress

TARGETS = boards.target_names()


def _progress() -> TerminalProgress:
    return TerminalProgress(sys.stderr)


class TinygenGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TinygenError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            ctx.exit(1)
        except click.BadParameter as exc:  # a wrong value is the user's error like any other
            exc.exit_code = 1
            raise
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing was written.", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # the reader went away (`tinygen boards | head`): not an error of ours
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more may reach the closed pipe
            ctx.exit(141)
        except Exception as exc:  # a bug in tinygen, not the user's input
            if os.environ.get("TINYGEN_DEBUG"):
                raise
            click.echo(f"Internal error in tinygen {__version__}: {type(exc).__name__}: {exc}\n"
                       "Please report it with the command you ran (TINYGEN_DEBUG=1 shows the "
                       "traceback).", err=True)
            ctx.exit(3)


def _board_help() -> str:
    parts = [f"{t}: {', '.join(boards.board_ids(t))} (default {boards.default_board(t)})" for t in TARGETS]
    return "Board id. " + "; ".join(parts) + ". `tinygen boards` shows details."


def _quantize_help() -> str:
    return ("Quantization for Keras models and SavedModels (a .tflite takes no --quantize: it is "
            "embedded as is, unless the board's library would compute it wrongly; then tinygen rewrites "
            "it and says how). "
            + "; ".join(f"{k}: {v}" for k, v in QUANTIZATIONS.items())
            + ". Default: int8 with --calibration-data, none (float32) without. A board whose "
            "TFLite-Micro reads one weight scale per Dense layer gets its Dense layers quantized so.")


_model_argument = click.argument("model", type=click.Path(path_type=Path))
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")


def _add_user_boards(ctx, param, paths) -> None:
    for path in paths:
        boards.add_user_boards(path)


# Eager: the boards are in the catalog before --board is looked up.
_boards_file_option = click.option(
    "--boards", "boards_files", type=click.Path(path_type=Path), multiple=True, is_eager=True,
    expose_value=False, callback=_add_user_boards,
    help="YAML file of your own boards, in the layout and with the fields of tinygen's catalog "
    "(`targets: <target>: boards: <id>: {...}`; `based_on: <catalog board>` starts from one). "
    "Repeatable.")


def _analysis_target_options(what: str):
    """--target/--board of the commands that analyse without generating (default esp-idf)."""
    def decorate(command):
        command = _boards_file_option(command)
        command = click.option("--board", default=None, help=_board_help())(command)
        return click.option("--target", type=click.Choice(TARGETS), default="esp-idf", show_default=True,
                            help=f"Target whose {what}.")(command)
    return decorate
_quantize_option = click.option("--quantize", type=click.Choice(list(QUANTIZATIONS)),
                                default=None, help=_quantize_help())
_golden_bytes_option = click.option(
    "--golden-bytes", type=click.IntRange(min=0), default=None,
    help="Flash the self-test's golden vectors may take (default: 10% of the model, at most 32 KB "
    "and at least 1 KB). Within it tinygen stores up to 3 vectors; fewer, or inputs the firmware "
    "generates itself from a seed, when they would not fit.")
_calibration_option = click.option(
    "--calibration-data", type=click.Path(path_type=Path), default=None,
    help="Representative inputs (.npy, or .npz with one array per input) of shape "
    "(N, *input_shape): calibrates int8 and seeds the firmware self-test.")


@click.group(cls=TinygenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinygen")
def cli() -> None:
    """Turn a trained Keras or TFLite model into a complete TFLite-Micro firmware project.

    \b
      tinygen new --target esp-idf model.keras
      tinygen new --target esp-idf --calibration-data samples.npy model.keras
      tinygen inspect model.tflite --json
    """


@cli.command()
@click.option("--target", required=True, type=click.Choice(TARGETS), help="Firmware ecosystem.")
@click.option("--board", default=None, help=_board_help())
@_boards_file_option
@click.option("--name", default=None,
              help="Project name (folder, sketch, CMake project), or with --as library the library's name "
              "(also its C++ namespace, file prefix and Zephyr CONFIG_ symbol). Default: the model file name. "
              "Reduced to letters, digits, '_' and '-' ('_' only for a library).")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="Folder in which the project folder is created.")
@_quantize_option
@_calibration_option
@click.option("--labels", "labels_path", type=click.Path(path_type=Path), default=None,
              help="Class names of the model's first output, one per line in output order: the "
              "firmware gets kLabels[] and model_top1(). Default: the labels a .tflite carries "
              "in its metadata, if any.")
@click.option("--force", is_flag=True,
              help="Regenerate over a project tinygen made: its own files are rewritten (a copy of "
              "any you edited is kept as *.user-backup); your application files are never touched.")
@_golden_bytes_option
@click.option("--profile", "with_profile", is_flag=True,
              help="Firmware that prints each operator's time after the self-test (TFLite-Micro's "
              "profiler hook); read a saved serial log back with `tinygen profile LOG`. Off: no "
              "profiling code is compiled.")
@click.option("--as", "output_kind", type=click.Choice(["project", "library"]), default="project", show_default=True,
              help="project: a complete firmware project. library: the ecosystem's unit of reuse for an "
              "existing firmware (an Arduino library with its zip, an ESP-IDF component, a Zephyr module), "
              "its API in namespace NAME behind #include <NAME.h>, so several models link into one firmware.")
@click.option("--arena", "arena_mode", type=click.Choice(["own", "shared"]), default="own", show_default=True,
              help="With --as library: own: the library has its own tensor arena. shared: it uses one arena "
              "the firmware defines once (TINYGEN_SHARED_ARENA) for models that never run at the same time, "
              "sized for the largest.")
@_model_argument
def new(target, board, name, output_dir, quantize, calibration_data, labels_path, force, golden_bytes,
        with_profile, output_kind, arena_mode, model) -> None:
    """Generate a firmware project for MODEL (.keras, .h5, SavedModel dir or .tflite), or with
    --as library the model as a library for an existing firmware; with MODEL_REPORT.md: what the
    model costs on the board and how each figure was obtained."""
    from .boards.fit import require_fit
    from .output import report as views
    from .output.context import template_name
    from .output.naming import library_name, project_name
    from .output.project import write_project
    from .output.render import archive_path, check_destination
    from .pipeline import prepare

    progress = _progress()
    library = output_kind == "library"
    if arena_mode == "shared" and not library:
        raise TinygenError("--arena shared is for libraries (several models in one firmware).",
                           hint="Add --as library, or leave --arena out.")
    to_name = library_name if library else project_name
    project = to_name(name if name is not None else model.stem if model.suffix else model.name)
    if name is not None and project != name:
        allowed = "letters, digits and '_'; not a C++ keyword" if library else "letters, digits, '_' and '-' only"
        progress(f"{'Library' if library else 'Project'} name '{name}' is used as '{project}' ({allowed}).")
    check_destination(output_dir / project, force)  # before any slow work
    prepared = prepare(model, target, board, quantize, calibration_data, progress=progress,
                       labels_path=labels_path, golden_bytes=golden_bytes)
    prepared.require_resolution()
    require_fit(prepared.fit)
    if library and arena_mode == "shared" and prepared.fit.arena_in_psram:
        raise TinygenError(f"The arena ({prepared.arena.arena_bytes:,} B) must go to PSRAM on {prepared.board.name}: a "
                           "shared arena is a static buffer in internal RAM.", hint="Leave --arena out (own arena).")
    written = write_project(prepared, project, output_dir, force, profile=with_profile, library=library,
                            shared_arena=arena_mode == "shared")
    rendered, inspection = written.rendered, written.inspection

    report, arena, resolution = prepared.report, prepared.arena, prepared.resolution
    click.echo(f"{'Updated' if rendered.regenerated else 'Created'} {rendered.path} for {prepared.board.name}: "
               f"{len(rendered.written)} file(s) written, {len(rendered.unchanged)} unchanged.")
    click.echo(f"  model      {report.model_bytes:,} bytes, {report.quantization_label}, "
               f"{report.parameter_count:,} parameters, sha256 {report.sha256[:12]}")
    click.echo(f"  operators  {resolution.size}: {', '.join(report.ops + report.custom_ops)}")
    click.echo(f"  arena      {arena.arena_bytes:,} bytes ({arena.breakdown()})")
    click.echo(f"  fit        {prepared.fit.summary()}")
    click.echo(f"  arena in   {prepared.fit.placement}")
    if inspection.latency is not None:
        click.echo(f"  latency    {inspection.latency.describe()} per inference "
                   f"(an estimate with its band; {views.REPORT_FILE} says how it was made)")
    if with_profile:
        click.echo("  profile    the firmware prints each operator's time after the self-test; "
                   f"save the serial log and run `tinygen profile LOG --project {rendered.path}`")
    if prepared.labels:
        click.echo(f"  labels     {len(prepared.labels)}: {', '.join(prepared.labels[:8])}"
                   + (", ..." if len(prepared.labels) > 8 else ""))
    if library:
        context = written.context
        arena_text = ("shared: your firmware defines it once with TINYGEN_SHARED_ARENA, sized for the largest model"
                      if arena_mode == "shared" else "its own (--arena shared: one arena for models that never run "
                      "at the same time)")
        click.echo(f"  API        namespace {context['ns']}, #include <{context['files']['tinygen_model']}.h>; "
                   f"arena {arena_text}")
        click.echo(f"  add it     {rendered.path / 'README.md'} says how, in five steps")
        archive = archive_path(template_name(prepared.board, library=True), project)
        if archive:
            click.echo(f"  zip        {rendered.path / archive} (arduino-cli lib install --zip-path)")
    else:
        click.echo(f"  your code  {', '.join(rendered.user_files)} (tinygen never rewrites these)")
        click.echo(f"  build      cd {rendered.path} && "
                   f"{prepared.board['build_command'].format(id=prepared.board.id, **prepared.board.settings)}")
    for original, backup in rendered.backups:
        click.echo(f"  backup     {original} is tinygen's and was regenerated; your edited copy is {backup}")
    if prepared.warnings:
        click.echo(f"  warnings   {len(prepared.warnings)} (above)")


@cli.command()
@_analysis_target_options("operator table, arena and fit are checked (exit code 1 if the model "
                          "cannot run on or does not fit its board)")
@_quantize_option
@_calibration_option
@_golden_bytes_option
@_json_option
@click.option("--format", "output_format", type=click.Choice(["table", "json", "markdown"]), default="table",
              show_default=True, help="table: for a terminal; json: one object (as --json); markdown: "
              "the report `new` writes to MODEL_REPORT.md.")
@_model_argument
@click.pass_context
def inspect(ctx, target, board, quantize, calibration_data, golden_bytes, as_json, output_format, model) -> None:
    """Show what MODEL costs on a board: operators, tensors, per-layer MACs, weights and memory,
    arena, latency estimate (with its band and what it rests on) and fit, then whether it fits each board in the catalog. Exits 1
    when it cannot run on, or does not fit, the board asked about (default: the target's
    default board), so CI can gate on it."""
    from .output import report as views
    from .pipeline import prepare

    prepared = prepare(model, target, board, quantize, calibration_data, with_golden=False,
                       progress=_progress(), allow_unsupported=True, golden_bytes=golden_bytes)
    inspection = views.inspect(prepared)
    if as_json or output_format == "json":
        click.echo(json.dumps(views.to_dict(inspection), indent=2))
    elif output_format == "markdown":
        click.echo(views.to_markdown(inspection))
    else:
        click.echo(views.to_text(inspection))
    if not inspection.verdict["ok"]:
        click.echo(f"Error: {inspection.verdict['reason']}", err=True)
        if inspection.verdict.get("hint"):
            click.echo(f"Hint: {inspection.verdict['hint']}", err=True)
        ctx.exit(1)


@cli.command()
@click.option("--project", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="The project the firmware was built from (made by `tinygen new --profile`).")
@click.option("--calibrate", "boards_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Fit this board's latency constants from the profile and write them to this boards "
              "file (created if missing): into the board itself if the file defines it, else as "
              "`<board>-measured` based on the catalog board. Then `--boards FILE --board ID` estimates "
              "from your own measurements.")
@_json_option
@click.argument("log", type=click.Path(path_type=Path))
def profile(project, boards_file, as_json, log) -> None:
    """Read a saved serial LOG of a `tinygen new --profile` firmware and show each operator's
    measured time beside tinygen's estimate for it; with --calibrate, learn the board's latency
    from it. Exits 1 when the log holds no complete profile or its operators are not the
    project's model."""
    from .output.profile import calibrate_board, compare

    comparison = compare(log, project)
    calibration = calibrate_board(comparison, boards_file, Path(log).name) if boards_file else None
    if as_json:
        result = comparison.to_dict()
        if calibration:
            result["calibration"] = calibration.to_dict()
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(comparison.to_text())
        if calibration:
            click.echo(calibration.to_text())


@cli.command()
@_analysis_target_options("arena is used on the TFLite-Micro runtime")
@_quantize_option
@_calibration_option
@click.option("--eval-data", type=click.Path(path_type=Path), default=None,
              help="Labelled inputs (.npz: `x` or one array per input name, and labels `y`): "
              "also prints each runtime's top-1 accuracy (classifier) or MSE (regressor).")
@_json_option
@_model_argument
def verify(target, board, quantize, calibration_data, eval_data, as_json, model) -> None:
    """Check MODEL as the firmware runs it, and compare it with TFLite and Keras.

    The verdict (exit code 1 on failure): TFLite-Micro with tinygen's I/O wrapper and the
    board's emitted arena must compute exactly what TFLite-Micro's own reference run does on
    the same bytes; a difference is a deployment bug. TFLite interpreter vs TFLite-Micro
    (with top-1 agreement) and Keras vs TFLite are information: near-tie rounding and
    quantization loss, not bugs; so is what tinygen's rewrites of the model for the board's
    library changed (the model as given vs as the board gets it). Inputs: --eval-data, else
    the calibration data, else pseudo-random ones. A .tflite needs no TensorFlow (the TFLite
    comparison is then skipped).
    """
    from .check.verify import failure_error
    from .check.verify import verify as run_verification
    from .pipeline import prepare

    if eval_data is not None and not eval_data.is_file():
        raise TinygenError(f"Evaluation data file '{eval_data}' does not exist.")
    progress = _progress()
    prepared = prepare(model, target, board, quantize, calibration_data, with_golden=False,
                       progress=progress)
    result = run_verification(prepared, eval_data, progress=progress)
    if as_json:
        click.echo(json.dumps({"model": str(model), "quantization": prepared.report.quantization,
                               "quantization_label": prepared.report.quantization_label,
                               "target": target, "board": prepared.board.id} | result.to_dict(), indent=2))
    else:
        _print_verification(prepared, result)
    if not result.ok:
        raise failure_error(result)


def _print_verification(prepared, result) -> None:
    click.echo(f"Verified {prepared.model_path.name} ({prepared.report.quantization_label}) on "
               f"{result.samples} samples from {result.inputs_from}; TFLite-Micro arena "
               f"{result.arena_bytes:,} bytes ({prepared.board.target}/{prepared.board.id})")
    click.echo(f"  {'':<28}{'max |diff|':>12}{'mean |diff|':>13}")

    def row(title: str, d, note: str, what: str) -> None:
        if d is None:
            click.echo(f"  {title:<28}{'-':>12}{'-':>13}   not compared: {note}")
            return
        details = []
        if d.max_steps is not None:
            details.append(f"max {d.max_steps:g} step(s)")
        if d.top1_agreement is not None:
            details.append(f"top-1 agrees on {d.top1_agreement:.1%}")
        click.echo(f"  {title:<28}{d.max_abs:>12.6g}{d.mean_abs:>13.6g}   "
                   + ", ".join(details + [what]))

    row("Keras vs TFLite", result.keras_vs_tflite, result.keras_note, "quantization loss (information)")
    if result.rewrite_vs_original is not None:
        row("given vs rewritten for board", result.rewrite_vs_original, "",
            "the rewrites for the board's library (information)")
    row("TFLite vs TFLite-Micro", result.tflite_vs_tflm, result.tflite_note,
        "two implementations' rounding (information)")
    if result.deployment is None:
        click.echo(f"  {'deployed vs TFLM reference':<28}{'-':>12}{'-':>13}   FAIL: did not run")
    else:
        row("deployed vs TFLM reference", result.deployment, "",
            "verdict: " + ("PASS (exact)" if result.deployment.ok else "FAIL"))
    if result.metric:
        names = {"keras": "Keras", "tflite": "TFLite", "tflm": "TFLite-Micro"}
        percent = "accuracy" in result.metric
        shown = [f"{names[k]} {v * 100:.1f}%" if percent else f"{names[k]} {v:.6g}"
                 for k, v in result.scores.items()]
        click.echo(f"  {result.metric}: " + ", ".join(shown))


@cli.command(name="boards")
@click.option("--target", type=click.Choice(TARGETS), default=None, help="Only this target.")
@_boards_file_option
def list_boards(target) -> None:
    """List the boards of each target with their memory budgets, clock, core and kernels (the
    last three decide the latency estimate)."""
    for t in [target] if target else TARGETS:
        click.echo(f"{t} (default {boards.default_board(t)}):")
        for board_id in boards.board_ids(t):
            b = boards.get_board(t, board_id)
            psram = f"  PSRAM {b['psram_bytes']:,} B" if b.get("psram_bytes") else ""
            clock = f"{b['cpu_mhz']:>4} MHz" if b.get("cpu_mhz") else "       -"
            source = boards.user_board_source(t, board_id)
            core = b.get("core") or "-"
            click.echo(f"  {board_id:<20} flash {b['flash_bytes']:>10,} B  RAM {b['ram_bytes']:>9,} B  {clock}  "
                       f"{core:<14} kernels {b['kernels']:<23} {b.name}{psram}"
                       + (f"  (from {source})" if source else ""))


def main() -> None:
    cli(prog_name="tinygen")


if __name__ == "__main__":
    sys.exit(main())
