"""The `tinygen` command line: thin Click commands over the library functions.

Every user-fixable failure is a TinygenError, turned into one message and exit code 1 here;
anything else is reported as an internal error (exit 3) without a traceback unless
TINYGEN_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__, boards
from .convert import QUANTIZATIONS
from .errors import TinygenError

TARGETS = boards.target_names()


def _progress(message: str) -> None:
    click.echo(message, err=True)


class TinygenGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TinygenError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            ctx.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing was written.", err=True)
            ctx.exit(130)
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
    return ("Quantization for Keras models and SavedModels (a .tflite is embedded as is and "
            "takes no --quantize). "
            + "; ".join(f"{k}: {v}" for k, v in QUANTIZATIONS.items()) + ". Default: int8.")


_model_argument = click.argument("model", type=click.Path(path_type=Path))
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")


def _analysis_target_options(what: str):
    """--target/--board of the commands that analyse without generating (default esp-idf)."""
    def decorate(command):
        command = click.option("--board", default=None, help=_board_help())(command)
        return click.option("--target", type=click.Choice(TARGETS), default="esp-idf", show_default=True,
                            help=f"Target whose {what}.")(command)
    return decorate
_quantize_option = click.option("--quantize", type=click.Choice(list(QUANTIZATIONS)),
                                default=None, help=_quantize_help())
_calibration_option = click.option(
    "--calibration-data", type=click.Path(path_type=Path), default=None,
    help="Representative inputs (.npy, or .npz with one array per input) of shape "
    "(N, *input_shape): calibrates int8 and seeds the firmware self-test.")


@click.group(cls=TinygenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinygen")
def cli() -> None:
    """Turn a trained Keras or TFLite model into a complete TFLite-Micro firmware project.

    \b
      tinygen new --target esp-idf --calibration-data samples.npy model.keras
      tinygen inspect model.tflite --json
    """


@cli.command()
@click.option("--target", required=True, type=click.Choice(TARGETS), help="Firmware ecosystem.")
@click.option("--board", default=None, help=_board_help())
@click.option("--name", default=None,
              help="Project name (folder, sketch, CMake project). Default: the model file name. "
              "Reduced to letters, digits, '_' and '-'.")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="Folder in which the project folder is created.")
@_quantize_option
@_calibration_option
@click.option("--force", is_flag=True,
              help="Regenerate over an existing tinygen project: only files tinygen wrote are "
              "replaced; one you edited is kept, with the new version beside it as *.tinygen-new.")
@_model_argument
def new(target, board, name, output_dir, quantize, calibration_data, force, model) -> None:
    """Generate a firmware project for MODEL (.keras, .h5, SavedModel dir or .tflite)."""
    from .context import build_context, golden_arrays, model_array
    from .fit import require_fit
    from .naming import project_name
    from .pipeline import prepare
    from .render import EDITED_SUFFIX, render_project

    project = project_name(name if name is not None else model.stem if model.suffix else model.name)
    if name is not None and project != name:
        _progress(f"Project name '{name}' is used as '{project}' (letters, digits, '_' and '-' only).")
    prepared = prepare(model, target, board, quantize, calibration_data, progress=_progress)
    require_fit(prepared.fit)
    context = build_context(prepared, project)
    blobs = {"model_array": model_array(prepared), "golden_arrays": golden_arrays(prepared.golden)}
    rendered = render_project(context, blobs, prepared.board["template"],
                              prepared.board["firmware_dir"], output_dir, force)

    report, arena = prepared.report, prepared.arena
    click.echo(f"Created {rendered.path} ({len(rendered.files)} files) for {prepared.board.name}.")
    click.echo(f"  model      {report.model_bytes:,} bytes, {report.quantization}, "
               f"{report.parameter_count:,} parameters, sha256 {report.sha256[:12]}")
    click.echo(f"  operators  {prepared.resolution.size}: {', '.join(report.ops + report.custom_ops)}")
    click.echo(f"  arena      {arena.arena_bytes:,} bytes ({arena.breakdown()})")
    click.echo(f"  fit        {prepared.fit.summary()}")
    click.echo(f"  build      cd {rendered.path} && {prepared.board['build_command'].format(id=prepared.board.id, **prepared.board.settings)}")
    for kept in rendered.kept:
        click.echo(f"  kept       {kept}: you edited it; tinygen's new version is {kept}{EDITED_SUFFIX}")


@cli.command()
@_analysis_target_options("operator table and arena margin apply")
@_quantize_option
@_calibration_option
@_json_option
@_model_argument
def inspect(target, board, quantize, calibration_data, as_json, model) -> None:
    """Show MODEL's operators, tensors, arena and sizes (what `new` would emit), then
    whether it fits each board in the catalog."""
    from .analyze import report_to_dict
    from .fit import fit_every_board
    from .pipeline import prepare

    prepared = prepare(model, target, board, quantize, calibration_data, with_golden=False,
                       progress=_progress)
    report, arena, fit = prepared.report, prepared.arena, prepared.fit
    data = report_to_dict(report) | {
        "target": target,
        "board": prepared.board.id,
        "resolver_size": prepared.resolution.size,
        "resolver": [{"op": r.op, "method": r.method} for r in prepared.resolution.registrations],
        "arena_bytes": arena.arena_bytes,
        "arena_min_bytes": arena.arena_min_bytes,
        "arena_scratch_bytes": arena.scratch_bytes,
        "arena_kernels": arena.kernels,
        "tflm_runtime": arena.runtime,
        "fit": {"ok": fit.ok, "flash_needed_bytes": fit.flash_needed,
                "flash_available_bytes": prepared.board["flash_bytes"],
                "ram_needed_bytes": fit.ram_needed, "ram_available_bytes": prepared.board["ram_bytes"],
                "runtime_bytes_are_estimates": True},
    }
    every_board = fit_every_board(report, arena.arena_min_bytes)
    data["boards"] = [{"target": t, "board": b} | row.to_dict() for (t, b), row in every_board.items()]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Model       {model} ({prepared.model_kind}, quantization {report.quantization})")
    click.echo(f"Size        {report.model_bytes:,} bytes, {report.parameter_count:,} parameters, "
               f"{report.tensor_count} tensors, sha256 {report.sha256[:16]}")
    click.echo(f"Operators   {prepared.resolution.size} distinct "
               f"(MicroMutableOpResolver<{prepared.resolution.size}>)")
    for r in prepared.resolution.registrations:
        click.echo(f"  {r.op:<24} {r.method}()")
    for title, tensors in (("Inputs", report.inputs), ("Outputs", report.outputs)):
        click.echo(title)
        for t in tensors:
            quant = f" scale={t.scale:.6g} zero_point={t.zero_point}" if t.scale is not None else ""
            click.echo(f"  {t.name:<32} {str(t.shape):<16} {t.numpy_dtype or t.dtype}{quant}")
    click.echo(f"Arena       {arena.arena_bytes:,} bytes for {target}/{prepared.board.id} "
               f"({arena.breakdown()}; tflite-micro {arena.runtime})")
    for line in arena.scratch_detail:
        click.echo(f"  {line}")
    click.echo(f"Fit         {'OK' if fit.ok else 'DOES NOT FIT'}: {fit.summary()}")
    _print_board_table(every_board)


def _print_board_table(every_board) -> None:
    click.echo("Every board (model and arena measured; runtime flash/RAM are estimates, see "
               "`tinygen boards`)")
    click.echo(f"  {'target':<9}{'board':<19}{'arena B':>9}{'flash need / have':>25}"
               f"{'RAM need / have':>23}  fits")
    for (target, board_id), row in every_board.items():
        if row.fit is None:
            click.echo(f"  {target:<9}{board_id:<19}{'-':>9}{'-':>25}{'-':>23}  no: {row.unsupported.split(',')[0]}")
            continue
        f = row.fit
        flash = f"{f.flash_needed:,} / {f.board['flash_bytes']:,}"
        ram = f"{f.ram_needed:,} / {f.board['ram_bytes']:,}"
        verdict = "yes" if f.ok else "no: " + " and ".join(f.shortfalls)
        click.echo(f"  {target:<9}{board_id:<19}{f.arena_bytes:>9,}{flash:>25}{ram:>23}  {verdict}")


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
    """Run MODEL in Keras, the TFLite interpreter and TFLite-Micro and compare them.

    Keras vs TFLite shows what quantization cost. TFLite vs TFLite-Micro must agree within
    one quantization step (the firmware self-test's tolerance): otherwise the deployment is
    wrong and the exit code is 1. Inputs: --eval-data, else the calibration data, else
    pseudo-random ones.
    """
    from .pipeline import prepare
    from .verify import failure_error, verify as run_verification

    prepared = prepare(model, target, board, quantize, calibration_data, with_golden=False,
                       progress=_progress)
    result = run_verification(prepared, eval_data, progress=_progress)
    if as_json:
        click.echo(json.dumps({"model": str(model), "quantization": prepared.report.quantization,
                               "target": target, "board": prepared.board.id} | result.to_dict(), indent=2))
    else:
        _print_verification(prepared, result)
    if not result.ok:
        raise failure_error(result)


def _print_verification(prepared, result) -> None:
    click.echo(f"Verified {prepared.model_path.name} ({prepared.report.quantization}) on {result.samples} "
               f"samples from {result.inputs_from}; TFLite-Micro arena {result.arena_bytes:,} bytes "
               f"({prepared.board.target}/{prepared.board.id})")
    click.echo(f"  {'':<26}{'max |diff|':>12}{'mean |diff|':>13}")
    if result.keras_vs_tflite is not None:
        d = result.keras_vs_tflite
        click.echo(f"  {'Keras vs TFLite':<26}{d.max_abs:>12.6g}{d.mean_abs:>13.6g}   "
                   "conversion + quantization loss (reported only)")
    else:
        click.echo(f"  {'Keras vs TFLite':<26}{'-':>12}{'-':>13}   not compared: {result.keras_note}")
    d = result.tflite_vs_tflm
    steps = f"max {d.max_steps:.0f} step(s), " if d.max_steps is not None else ""
    verdict = "OK" if d.ok else "DISAGREE"
    click.echo(f"  {'TFLite vs TFLite-Micro':<26}{d.max_abs:>12.6g}{d.mean_abs:>13.6g}   "
               f"{steps}{verdict}")
    if result.metric:
        names = {"keras": "Keras", "tflite": "TFLite", "tflm": "TFLite-Micro"}
        percent = "accuracy" in result.metric
        shown = [f"{names[k]} {v * 100:.1f}%" if percent else f"{names[k]} {v:.6g}"
                 for k, v in result.scores.items()]
        click.echo(f"  {result.metric}: " + ", ".join(shown))


@cli.command(name="boards")
@click.option("--target", type=click.Choice(TARGETS), default=None, help="Only this target.")
def list_boards(target) -> None:
    """List the boards of each target with their memory budgets."""
    for t in [target] if target else TARGETS:
        click.echo(f"{t} (default {boards.default_board(t)}):")
        for board_id in boards.board_ids(t):
            b = boards.get_board(t, board_id)
            click.echo(f"  {board_id:<20} flash {b['flash_bytes']:>10,} B  RAM {b['ram_bytes']:>9,} B  "
                       f"kernels {b['kernels']:<15} {b.name}")


def main() -> None:
    cli(prog_name="tinygen")


if __name__ == "__main__":
    sys.exit(main())
