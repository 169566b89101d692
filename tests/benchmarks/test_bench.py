"""The benchmark as a user runs it, at a tiny size: every row present, positive, with its ratio.

No timing thresholds: speed claims belong to the benchmark's output, not to tests.
"""

import re
import subprocess
import sys

import pytest

from rwc_keras.benchmarks import machine
from rwc_keras.benchmarks.tables import Table

IN_GRAPH = "RWC measurement, in-graph (callback)"
WITH_FILES = "RWC measurement + CSV and TensorBoard writes (on_epoch_end)"
MEASUREMENT_ROWS = {
    IN_GRAPH: ("ms", None),
    **{f"RWC and {metric} measurement, in-graph": ("ms", IN_GRAPH)
       for metric in ("update_ratio", "dist_init", "rotation", "weight_norm")},
    "all metrics measurement, in-graph": ("ms", IN_GRAPH),
    "RWC measurement, in-graph, CPU time": ("ms", None),
    "all metrics measurement, in-graph, CPU time": ("ms", "RWC measurement, in-graph, CPU time"),
    "RWC measurement, naive numpy": ("ms", IN_GRAPH),
    WITH_FILES: ("ms", None),
    "all metrics measurement + CSV and TensorBoard writes (on_epoch_end)": ("ms", WITH_FILES),
    "RWC every step inside the train step: measurement + its share of the epoch-end writes": (
        "ms", WITH_FILES),
}
# A difference of two timings, which the machine's noise may turn negative.
SIGNED_ROWS = {"all metrics every step: time added to the RWC measurement / plain step time"}
ROWS = {
    "fit, plain": ("img/s", None),
    "fit + RWC every epoch": ("img/s", "fit, plain"),
    "fit + RWC every 10 steps": ("img/s", "fit, plain"),
    "fit + RWC every step": ("img/s", "fit, plain"),
    **MEASUREMENT_ROWS,
    "RWC every step: measurement with writes / plain step time": ("%", None),
    "RWC every step inside the train step (TensorFlow's update_freq=N) / plain step time": (
        "%", None),
    **{name: ("%", None) for name in SIGNED_ROWS},
    "RWC every epoch: the same / a CIFAR-10 epoch (6250 steps)": ("%", None),
    "input pipeline alone (generated CIFAR-shaped data)": ("img/s", "fit, plain"),
    "driver Trainer epochs (pipeline + its loop)": ("img/s", "fit, plain"),
    "driver Trainer epochs, MirroredStrategy over 1 device": (
        "img/s", "driver Trainer epochs (pipeline + its loop)"),
    "driver: waits for the device per epoch (2 steps)": ("reads", None),
    "training FLOP/s (plain fit)": ("GFLOP/s", "matmul 256x256 float32"),
    "fit, plain, again at the end (drift check)": ("img/s", "fit, plain"),
}


def table_rows(text, title):
    """The rows of the markdown table under ``### title``: name -> list of cells."""
    section = text.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("measurement", "---"):
            rows[cells[0]] = cells[1:]
    return rows


def run_bench(*args):
    result = subprocess.run(
        [sys.executable, "-m", "rwc_keras.benchmarks.bench", "--archs=alexnet", *args],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "bench.md"
    stdout = run_bench("--quick", "--steps=2", "--repeats=2", "--batch_size=8",
                       "--matmul_size=256", f"--output={output}")
    return stdout, output


def check_rows(rows, expected):
    assert set(rows) == set(expected)
    for name, (unit, reference) in expected.items():
        median, low, high, row_unit, ratio = rows[name]
        assert name in SIGNED_ROWS or float(low) > 0, name
        assert row_unit == unit, name
        if reference is None:
            assert ratio == "", name
        else:
            match = re.fullmatch(r"(\S+) x (.+)", ratio)
            assert match and float(match[1]) > 0 and match[2] == reference, (name, ratio)


@pytest.mark.slow
def test_every_row_is_positive_with_its_ratio(bench_run):
    stdout, _ = bench_run
    check_rows(table_rows(stdout, "alexnet"), ROWS)
    matmul = table_rows(stdout, "reference matmul")
    assert float(matmul["matmul 256x256 float32"][0]) > 0


@pytest.mark.slow
def test_header_names_machine_and_command(bench_run):
    stdout, _ = bench_run
    assert "- command: `python -m rwc_keras.benchmarks.bench --archs=alexnet --quick" in stdout
    assert re.search(r"- CPU: .+, \d+ cores \(\d+ usable\), flags [A-Z0-9_ ]+, load", stdout)
    assert "TensorFlow 2." in stdout and "Keras 3." in stdout
    # One progress line per measurement, before the tables.
    assert stdout.index("[alexnet] fit, plain:") < stdout.index("### alexnet")


@pytest.mark.slow
def test_output_file_holds_the_tables(bench_run):
    stdout, output = bench_run
    text = output.read_text()
    assert text.startswith("## RWC benchmark")
    assert table_rows(text, "alexnet") == table_rows(stdout, "alexnet")
    assert "[alexnet]" not in text  # progress lines stay on the terminal


@pytest.mark.slow
def test_measurement_only_times_the_measurement_alone():
    stdout = run_bench("--measurement_only", "--repeats=1")
    check_rows(table_rows(stdout, "alexnet"), MEASUREMENT_ROWS)
    assert "### reference matmul" not in stdout and "fit, plain" not in stdout


def test_cpu_flags_lists_the_vector_flags_cpuinfo_reports(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n"
                       "flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 avx512fp16\n")
    monkeypatch.setattr(machine, "CPUINFO", str(cpuinfo))
    assert machine.cpu_model() == "Some CPU"
    # avx is not avx2's prefix match: only whole flags count.
    assert machine.cpu_flags() == "AVX2 FMA AVX512F AVX512_BF16"
    monkeypatch.setattr(machine, "CPUINFO", str(tmp_path / "missing"))
    assert machine.cpu_flags() == "unknown"


def test_a_row_reads_median_min_max_and_its_ratio_from_its_values():
    table = Table("t")
    plain = table.add("plain", [4.0, 1.0, 2.0], "ms")
    table.add("other", [1.0, 3.0, 2.0, 10.0], "ms", plain)
    rows = table_rows(table.markdown(), "t")
    assert rows["plain"] == ["2", "1", "4", "ms", ""]
    # An even count's median is the mean of the middle two: 2.5, i.e. 1.25 x plain's 2.
    assert rows["other"] == ["2.5", "1", "10", "ms", "1.25 x plain"]
