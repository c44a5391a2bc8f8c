"""Benchmarks (run by hand: `make bench`). Prints seven tables:

1. Arena on the boards: for published models, the arena tinygen emits for a board vs the
   smallest that really works there, measured on a 32-bit core with the board's pinned
   library (bench/arena_evidence.yaml says how). Targets: never below, at most 5% above.
   Needs the models: CORPUS=DIR (default ../shared/corpus); missing ones are listed.
2. Latency: every published figure the latency estimate is fitted to, estimated with its whole
   source left out (leave-one-source-out), inside its band or not; per core and overall the
   median error, the share inside the band and the worst miss.
3. Arena on the host: the memory plan tinygen simulates vs the host runtime's own, and the
   host runtime's minimum (scanned down in 16-byte steps) for six kinds of model, beside what
   two hand rules give (a hand-set 10 KB, as in many tutorials, and "10x the model size").
4. Accuracy: a small CNN on scikit-learn's digits (bundled with scikit-learn, no download),
   float Keras vs int8 on TFLite-Micro, through `tinygen verify`. Target: drop <= 1 point.
5. Speed: `tinygen new` wall time for .tflite input vs .keras input vs a bare TensorFlow
   import + load + convert, measured in the same run. Targets: .tflite < 1 s, .keras <= 1.3x
   bare.
6. What the board computes: per published and newly trained model and emulated board library,
   the self-test's result on the board's pinned library (bench/numerics_evidence.yaml, from
   bench/board_runs.py) beside what tinygen does for that board today (rewrites, tolerance).
   Targets: every run PASSes or is refused with a reason; tolerance 0 wherever tinygen says exact.
7. Fault injection: a broken deployment (corrupted weights, a wrong input scale, the arena over
   the model) must not PASS on the emulated board.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))  # the example's data set (tinygen itself is installed)

import numpy as np  # noqa: E402


def make_models(folder: Path) -> dict[str, tuple[Path, Path]]:
    import keras
    from shapes import make_shapes

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = make_shapes(64, seed=5)[0]
    specs = {
        "dense MLP": (keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                                        keras.layers.Dense(32, activation="relu"), keras.layers.Dense(8)]),
                      rng.normal(size=(64, 32))),
        "Conv2D CNN": (keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                                         keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, activation="relu"),
                                         keras.layers.Flatten(), keras.layers.Dense(3)]), images),
        "depthwise-separable": (keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2),
                                                  keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
                                                  keras.layers.Conv2D(16, 1, activation="relu"),
                                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)]),
                                rng.uniform(size=(64, 32, 32, 3))),
        "Conv1D": (keras.Sequential([keras.Input((128, 3)), keras.layers.Conv1D(16, 5, activation="relu"),
                                     keras.layers.MaxPooling1D(2), keras.layers.Conv1D(16, 5, activation="relu"),
                                     keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(5)]),
                   rng.normal(size=(64, 128, 3))),
        # Unrolled: TensorFlow 2.21's converter crashes calibrating a rolled Keras 3 LSTM for
        # int8 (tinygen reports that as an error); unrolled it is plain FC/LOGISTIC/TANH ops.
        "LSTM (unrolled)": (keras.Sequential([keras.Input((20, 4)), keras.layers.LSTM(16, unroll=True),
                                              keras.layers.Dense(3)]),
                            rng.normal(size=(64, 20, 4))),
    }
    made = {}
    for name, (model, samples) in specs.items():
        stem = name.split()[0].lower().replace("-", "_")
        model.save(folder / f"{stem}.keras")
        np.save(folder / f"{stem}.npy", samples.astype(np.float32))
        made[name] = (folder / f"{stem}.keras", folder / f"{stem}.npy")
    made["example shapes_cnn"] = (REPO / "examples" / "shapes_cnn.keras", REPO / "examples" / "shapes_calibration.npy")
    return made


def board_with(library: str, kernels: str):
    """A catalog board that pins `library` with `kernels` (what an evidence row was run with)."""
    from tinygen.boards.catalog import board_ids, get_board, target_names

    return next(board for board in (get_board(t, b) for t in target_names() for b in board_ids(t))
                if board["tflm_library"] == library and board["kernels"] == kernels)


def corpus_model(corpus: Path, row: dict) -> bytes | None:
    """The model an evidence row names, if that very file is in the corpus."""
    import hashlib

    path = corpus / f"{row['model']}.tflite"
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != row["sha256"]:
        return None
    return path.read_bytes()


def board_arena_table() -> None:
    import yaml
    from tinygen.library.numerics import adapt
    from tinygen.memory.arena import host_allocations, plan_arena
    from tinygen.model.analyze import analyze
    from tinygen.model.tflm_host import HostRuntime

    corpus = Path(os.environ.get("CORPUS", REPO.parent / "shared" / "corpus"))
    evidence = yaml.safe_load((REPO / "bench" / "arena_evidence.yaml").read_text())["measurements"]
    print(f"\nArena on the boards: tinygen's vs the smallest that works on a 32-bit core (models from {corpus})")
    print(f"{'model':<44}{'library / kernels':<42}{'emitted':>9}{'measured':>10}{'ratio':>8}")
    ratios, missing = [], []
    for row in evidence:
        data = corpus_model(corpus, row) or corpus_model(REPO / "bench" / "models", row)
        if data is None:
            missing.append(row["model"])
            continue
        adapted = adapt(data, analyze(data), board_with(row["library"], row["kernels"]))  # as the board gets it
        with HostRuntime(adapted.tflite) as runtime:
            host = host_allocations(runtime)
        emitted = plan_arena(adapted.report, 0, host, row["library"], row["kernels"]).arena_bytes
        ratio = emitted / row["measured_min_bytes"]
        ratios.append(ratio)
        flag = "  BELOW" if ratio < 1 else "  >5%" if ratio > 1.05 else ""
        print(f"{row['model']:<44}{row['library'] + ' / ' + row['kernels']:<42}{emitted:>9,}"
              f"{row['measured_min_bytes']:>10,}{ratio:>8.3f}{flag}")
    if ratios:
        print(f"{len(ratios)} measurements: ratio min {min(ratios):.3f}, max {max(ratios):.3f}; "
              f"{sum(r < 1 for r in ratios)} below, {sum(r > 1.05 for r in ratios)} more than 5% above")
    if missing:
        print(f"not found under {corpus} (or another file): {', '.join(sorted(set(missing)))}")


def numerics_tables() -> None:
    import yaml
    from tinygen.boards.catalog import get_board
    from tinygen.library.numerics import adapt
    from tinygen.model.analyze import analyze

    corpus = Path(os.environ.get("CORPUS", REPO.parent / "shared" / "corpus"))
    evidence = yaml.safe_load((REPO / "bench" / "numerics_evidence.yaml").read_text())
    trained = REPO / "bench" / "models"  # the Keras-trained models (bench/numerics_models.py)
    print("\nWhat the board computes: the self-test on the emulated board's pinned library "
          "(bench/numerics_evidence.yaml) beside what tinygen does for it now")
    print(f"{'model':<44}{'board':<22}{'run':<9}{'tolerance':<11}tinygen now")
    counts: dict[str, int] = {}
    for row in evidence["runs"]:
        data = corpus_model(corpus, row) or corpus_model(trained, row)
        board = get_board(row["target"], row["board"])
        if data is None:
            now = "(model not here)"
        else:
            adapted = adapt(data, analyze(data), board)
            now = adapted.summary()
            if adapted.exact and not adapted.refused and row["result"] == "PASS" and any(row["tolerance_steps"]):
                now += "  MISMATCH: exact now, a tolerance then"
        verdict = row["result"] + ("" if row["result"] != "PASS" else " exact" if not any(row["tolerance_steps"]) else " within tolerance")
        counts[verdict] = counts.get(verdict, 0) + 1
        steps = "/".join(map(str, row["tolerance_steps"])) if row["tolerance_steps"] else "-"
        print(f"{row['model']:<44}{row['target'] + '/' + row['board']:<22}{row['result']:<9}{steps:<11}{now}")
    print("; ".join(f"{n} {v}" for v, n in sorted(counts.items())) + f" of {len(evidence['runs'])} runs")
    print("\nFault injection: the same firmware, broken on purpose, on the emulated board")
    print(f"{'model':<36}{'board':<22}{'fault':<22}{'result':<8}printed")
    for row in evidence["faults"]:
        print(f"{row['model']:<36}{row['target'] + '/' + row['board']:<22}{row['fault']:<22}{row['result']:<8}"
              f"{row['printed'][:70]}" + (f"\n{'':<88}{row['note']}" if row.get("note") else ""))
    for firmware in dict.fromkeys(r["firmware"] for r in evidence["faults"]):
        broken = [r for r in evidence["faults"] if r["fault"] != "none" and r["firmware"] == firmware]
        print(f"firmware {firmware}: {sum(r['result'] != 'PASS' for r in broken)} of {len(broken)} faulty "
              "firmwares failed their self-test")


def latency_table() -> None:
    """Every published latency the estimate is fitted to, beside the estimate for it when its
    whole source was left out of the fit (how far off the estimate is on a source it has not
    seen), whether it fell inside its band, and per core and overall the median error, the
    share inside the band and the largest miss. Also recounts each figure model's work from
    its file where one is at hand (CORPUS, or MODELS=DIR for the others, found by sha256) and
    stops on a difference with data/latency.yaml."""
    import hashlib
    import statistics

    from tinygen.boards.latency import calibration_data, left_out_table, reference_work
    from tinygen.model.analyze import analyze
    from tinygen.model.layers import model_cost

    folders = [Path(os.environ.get("CORPUS", REPO.parent / "shared" / "corpus"))]
    folders += [Path(os.environ["MODELS"])] if os.environ.get("MODELS") else []
    by_sha = {hashlib.sha256(p.read_bytes()).hexdigest(): p for f in folders if f.is_dir() for p in f.glob("*.tflite")}
    for key, entry in calibration_data()["models"].items():
        path = by_sha.get(entry["sha256"])
        if path is None:
            print(f"(not recounted: no file with {key}'s sha256 {entry['sha256'][:12]}; from {entry['origin']})")
            continue
        counted = model_cost(analyze(path.read_bytes()))
        assert counted == reference_work(key), f"{key}: {path.name} counts {counted}, latency.yaml says {entry['work']}"
    rows = left_out_table()
    print("\nLatency: each published figure estimated with its whole source left out of the fit")
    print(f"{'source':<36}{'core':<18}{'kernels':<16}{'model':<16}{'published ms':>13}{'estimate':>10}"
          f"{'ratio':>7}  band")
    for r in rows:
        print(f"{r['group'][:35]:<36}{r['core']:<18}{r['class']:<16}{r['model'][:15]:<16}{r['published_ms']:>13,.3f}"
              f"{r['estimate_ms']:>10,.3f}{r['published_ms'] / r['estimate_ms']:>7.2f}  "
              f"{'inside' if r['inside'] else 'OUTSIDE'}{'' if r['direct'] else ' (inferred)'}")

    def summary(label: str, subset: list[dict]) -> str:
        errors = [abs(r["published_ms"] / r["estimate_ms"] - 1) for r in subset]
        worst = max(max(r["published_ms"] / r["estimate_ms"], r["estimate_ms"] / r["published_ms"]) for r in subset)
        inside = sum(r["inside"] for r in subset)
        return (f"{label:<20}{len(subset):>8}{statistics.median(errors):>14.0%}{inside:>8}/{len(subset):<3}"
                f"{worst:>10.2f}x")

    print(f"\n{'core':<20}{'figures':>8}{'median error':>14}{'inside band':>12}{'worst':>11}")
    for core in sorted({r["core"] for r in rows}):
        print(summary(core, [r for r in rows if r["core"] == core]))
    print(summary("all", rows))
    print("Targets (issue 18): median error <= 30%, >= 80% inside their band, none more than 2x off.")


def arena_table(models: dict[str, tuple[Path, Path]], folder: Path) -> dict[str, Path]:
    from tinygen.memory.arena import check_plan, host_allocations, measure_arena_min
    from tinygen.model import calibration, convert, load
    from tinygen.model.analyze import analyze
    from tinygen.model.tflm_host import HostRuntime

    tflites = {}
    print("\nArena on the host runtime: the simulated memory plan is the runtime's (checked), and "
          "the host minimum beside hand rules")
    print(f"{'model':<22}{'model B':>9}{'plan':>8}{'host min':>10}{'scanned':>9}"
          f"{'hand 10 KB':>16}{'10x model':>18}")
    for name, (source, cal) in models.items():
        loaded = load.load_model(source)
        data = convert.convert(loaded, "int8", calibration.load_samples(cal, convert.input_specs(loaded)))
        path = folder / (source.stem + ".tflite")
        path.write_bytes(data)
        tflites[name] = path
        with HostRuntime(data) as runtime:
            host = host_allocations(runtime)
            check_plan(analyze(data), host)  # raises if the simulated plan differs
            computed = measure_arena_min(runtime)
            minimal = computed  # independent: scan down until it stops working
            while minimal > 16 and runtime.try_arena(minimal - 16)["ok"]:
                minimal -= 16
        print(f"{name:<22}{len(data):>9,}{host['head']:>8,}{computed:>10,}{minimal:>9,}"
              f"{rule_verdict(10 * 1024, minimal):>16}{rule_verdict(10 * len(data), minimal):>18}")
    return tflites


def rule_verdict(rule_bytes: int, minimal: int) -> str:
    """What a hand rule gives: too small (AllocateTensors fails) or how much it wastes."""
    if rule_bytes < minimal:
        return f"{rule_bytes:,} FAILS"
    return f"{rule_bytes:,} {rule_bytes / minimal:.1f}x"


def accuracy_table(folder: Path) -> None:
    import keras
    from sklearn.datasets import load_digits
    from tinygen.check.verify import verify
    from tinygen.pipeline import prepare

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]  # 8x8, scaled to [0, 1]
    y = digits.target
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[train], y[train], epochs=15, batch_size=32, verbose=0)
    model.save(folder / "digits.keras")
    np.save(folder / "digits_cal.npy", x[train][:200])
    np.savez(folder / "digits_eval.npz", x=x[test], y=y[test])
    prepared = prepare(folder / "digits.keras", "zephyr", "nrf52840dk", "int8", folder / "digits_cal.npy",
                       with_golden=False)
    result = verify(prepared, folder / "digits_eval.npz")
    keras_acc, tflite_acc, tflm_acc = (result.scores[k] * 100 for k in ("keras", "tflite", "tflm"))
    print(f"\nAccuracy: scikit-learn digits, small CNN, {result.samples} held-out images")
    print(f"{'float Keras':>12}{'int8 TFLite':>13}{'int8 TFLM':>11}{'drop':>8}  TFLite vs TFLM")
    print(f"{keras_acc:>11.1f}%{tflite_acc:>12.1f}%{tflm_acc:>10.1f}%{keras_acc - tflm_acc:>7.1f}p  "
          f"max {result.tflite_vs_tflm.max_steps:g} step(s), top-1 agrees on "
          f"{result.tflite_vs_tflm.top1_agreement:.1%}; deployment {'exact' if result.ok else 'FAILS'}")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def speed_table(models, tflites, folder: Path) -> None:
    tinygen = [sys.executable, "-m", "tinygen.cli"]
    print("\nSpeed: wall time, one run each, same machine and run")
    print(f"{'model':<22}{'new .tflite':>12}{'new .keras':>12}{'bare TF convert':>17}{'keras/bare':>11}")
    for name, (source, cal) in models.items():
        out = folder / "out"
        t_tflite = timed([*tinygen, "new", "--target", "esp-idf", "--output", str(out), "--force",
                          "--name", "a", str(tflites[name])])
        t_keras = timed([*tinygen, "new", "--target", "esp-idf", "--output", str(out), "--force",
                         "--name", "b", "--calibration-data", str(cal), str(source)])
        bare = ("import numpy as np, keras, tensorflow as tf\n"
                f"m = keras.models.load_model({str(source)!r}); x = np.load({str(cal)!r})\n"
                "c = tf.lite.TFLiteConverter.from_keras_model(m)\n"
                "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
                "c.representative_dataset = lambda: ([x[i:i+1]] for i in range(len(x)))\n"
                "c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
                "c.inference_input_type = c.inference_output_type = tf.int8\n"
                "c.convert()\n")
        t_bare = timed([sys.executable, "-c", bare])
        print(f"{name:<22}{t_tflite:>11.2f}s{t_keras:>11.2f}s{t_bare:>16.2f}s{t_keras / t_bare:>11.2f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        board_arena_table()
        numerics_tables()
        latency_table()
        models = make_models(folder)
        tflites = arena_table(models, folder)
        accuracy_table(folder)
        speed_table(models, tflites, folder)


if __name__ == "__main__":
    main()
