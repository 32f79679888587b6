"""bench/compare.py's progress line and its estimate of the time left; that each workload's
plan (what the line counts) is the processes its measure starts; and what a run without the
optional modules (the peers, scikit-learn, matplotlib) skips and says.

No child process runs here: subprocess.run is replaced by one that answers as the children
would, with made-up numbers."""

import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    """bench/runner.py and the workloads, imported as compare.py imports them."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("runner"), importlib.import_module("workloads")


@pytest.fixture(scope="module")
def compare(bench):
    return importlib.import_module("compare")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Recorder:
    """A renderer that keeps what it was asked to draw."""

    def __init__(self):
        self.shown = []
        self.closed = False

    def show(self, done, total, text):
        self.shown.append((done, total, text))

    def close(self):
        self.closed = True


def run_tasks(progress, clock, durations):
    """Run (task, seconds) pairs through `progress`, the fake clock standing in for time."""
    for task, seconds in durations:
        with progress.running(task):
            clock.now += seconds


def test_no_estimate_before_a_child_finished(bench):
    runner, _ = bench
    task = runner.Task("scalar", "tapegrad", ("10000",))
    progress = runner.Progress([task], clock=FakeClock())
    assert progress.estimate(task) is None
    assert progress.time_left() is None
    assert progress.line(task).startswith("? left · scalar · tapegrad")


def test_estimate_prefers_the_most_alike_finished_children(bench):
    runner, _ = bench
    Task = runner.Task
    a1, a2 = (Task("mlp", "tapegrad", ("64",), repeat, 2) for repeat in (1, 2))
    b1, b2 = (Task("mlp", "tapegrad", ("1024",), repeat, 2) for repeat in (1, 2))
    torch_mlp = Task("mlp", "PyTorch", ("64",))
    torch_hvp = Task("hvp", "PyTorch", ("64",))
    ode = Task("ode", "reference", ("50",))
    clock = FakeClock()
    progress = runner.Progress([a1, b1, torch_mlp, a2, b2, torch_hvp, ode], clock=clock)
    run_tasks(progress, clock, [(a1, 2.0), (b1, 6.0), (torch_mlp, 10.0)])
    assert progress.estimate(a2) == 2.0  # the same workload, library and size
    assert progress.estimate(b2) == 6.0
    assert progress.estimate(Task("mlp", "tapegrad", ("32",))) == 4.0  # workload and library
    assert progress.estimate(torch_hvp) == 10.0  # the same library elsewhere
    assert progress.estimate(ode) == 6.0  # nothing alike: the mean of all
    assert progress.time_left() == 2.0 + 6.0 + 10.0 + 6.0


def test_the_line_is_drawn_when_a_child_starts_and_never_while_it_runs(bench):
    runner, _ = bench
    Task = runner.Task
    tasks = [Task("scalar", "tapegrad", ("10000",), repeat, 2) for repeat in (1, 2)]
    clock, renderer = FakeClock(), Recorder()
    progress = runner.Progress(tasks, renderer, clock)
    with progress.running(tasks[0]):
        clock.now += 30
        assert len(renderer.shown) == 1  # the child runs (and times itself): no redraw
    with progress.running(tasks[1]):
        assert len(renderer.shown) == 2
    assert renderer.shown[0] == (0, 2, "? left · scalar · tapegrad · repeat 1/2 · 10000")
    assert renderer.shown[1] == (1, 2, "~30 s left · scalar · tapegrad · repeat 2/2 · 10000")
    progress.finish()
    assert renderer.closed


def test_a_child_missing_from_the_plan_is_counted(bench):
    runner, _ = bench
    planned, extra = runner.Task("gmm", "tapegrad"), runner.Task("gmm", "PyTorch")
    renderer = Recorder()
    progress = runner.Progress([planned], renderer, FakeClock())
    with progress.running(extra):
        pass
    with progress.running(planned):
        pass
    assert [(done, total) for done, total, _ in renderer.shown] == [(0, 2), (1, 2)]
    assert progress.pending == []


def test_labels_and_durations(bench):
    runner, _ = bench
    assert runner.Task("mlp", "PyTorch", ("64-float64",), 2, 5).label() == \
        "mlp · PyTorch · repeat 2/5 · 64-float64"
    assert runner.Task("loop", "tapegrad", what="10,000 steps").label() == \
        "loop · tapegrad · 10,000 steps"
    assert [runner.fmt_duration(s) for s in (0.4, 59.6, 61, 425, 3720)] == \
        ["0 s", "1m00s", "1m01s", "7m05s", "1h02m"]


def test_progress_line_rewrites_one_line_and_clears_it(bench):
    runner, _ = bench
    stream = io.StringIO()  # no terminal: 80 columns
    line = runner.ProgressLine(stream)
    line.show(0, 4, "~1m00s left · scalar · a long label")
    line.show(1, 4, "~45 s left · b")
    first, second = stream.getvalue().split("\r")[1:]
    assert first == "[....................] 0/4 ~1m00s left · scalar · a long label"
    assert second.rstrip() == "[#####...............] 1/4 ~45 s left · b"
    assert len(second) == len(first)  # spaces cover the longer line's tail
    line.show(2, 4, "x" * 200)
    assert len(stream.getvalue().split("\r")[-1]) == 79  # cut: a wrapped line stays on screen
    line.close()
    assert stream.getvalue().endswith("\r" + " " * 79 + "\r")


def test_a_terminal_of_zero_columns_gets_80(bench, monkeypatch):
    runner, _ = bench
    monkeypatch.setattr(runner.os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    assert runner.ProgressLine(TerminalOnFd2()).width() == 80
    monkeypatch.setattr(runner.os, "get_terminal_size", lambda fd: os.terminal_size((132, 40)))
    assert runner.ProgressLine(TerminalOnFd2()).width() == 132


class Terminal(io.StringIO):
    def isatty(self):
        return True


class TerminalOnFd2(Terminal):
    def fileno(self):
        return 2


def test_progress_is_drawn_on_a_terminal_only_and_not_with_quiet(bench, monkeypatch):
    runner, _ = bench
    monkeypatch.setattr(runner, "module_installed", lambda module: module != "tqdm")
    assert runner.progress_renderer(io.StringIO(), quiet=False) is None  # a log file
    assert runner.progress_renderer(Terminal(), quiet=True) is None
    assert isinstance(runner.progress_renderer(Terminal(), quiet=False), runner.ProgressLine)


def test_tqdm_draws_the_line_when_installed(bench):
    pytest.importorskip("tqdm")
    runner, _ = bench
    stream = Terminal()
    renderer = runner.progress_renderer(stream, quiet=False)
    assert isinstance(renderer, runner.TqdmLine)
    renderer.show(3, 8, "~12 s left · gmm · PyTorch")
    renderer.show(4, 8, "~9 s left · gmm · HIPS autograd")
    drawn = [line.strip() for line in stream.getvalue().split("\r") if line.strip()]
    assert drawn[0].endswith("| 3/8 ~12 s left · gmm · PyTorch")
    assert drawn[-1].endswith("| 4/8 ~9 s left · gmm · HIPS autograd")
    renderer.close()


REAL_RUN = subprocess.run


def fake_run(command, **kwargs):
    """What a child of compare.py prints, with made-up numbers in the fields its workload's
    measure reads; other commands run (platform.processor() runs uname)."""
    if not str(command[1]).endswith("compare.py"):
        return REAL_RUN(command, **kwargs)
    _, _, flag, *arguments = command
    if flag == "--memory-child":
        out = "120.0"
    else:
        workload, _, *sizes = arguments
        if workload == "overhead":
            result = {"t + u": {"tapegrad": 2e-6, "numpy": 1e-6}}
        elif workload == "loop":
            result = {"1000": 50 << 20, "10000": 51 << 20}
        else:
            result = {size: {"seconds": 1e-3, "first_call": 2e-3, "value": 1.0,
                             "grads": [[0.5, 0.25]], "forward": 1e-3, "backward": 1e-3,
                             "first_run": 3e-3, "plain": 1e-4} for size in sizes}
        out = json.dumps(result)
    return subprocess.CompletedProcess(command, 0, stdout=out + "\n", stderr="")


@pytest.mark.parametrize("mode", ["quick", "default", "full"])
@pytest.mark.parametrize("peers", ["installed here", "missing"])
def test_each_workloads_plan_is_the_children_its_measure_starts(bench, monkeypatch, mode,
                                                                 peers):
    runner, workloads = bench
    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    if peers == "missing":
        monkeypatch.setattr(runner, "module_installed", lambda module: False)
    for workload in workloads.REGISTRY:
        workload = workload.for_mode(mode)
        sizes = workload.sizes_for(mode)
        if sizes is None:
            continue
        repeats = workload.quick_repeats or 3
        plan = workload.plan(workload, sizes, repeats)
        assert plan, workload.name
        runner.PROGRESS.start(plan, clock=FakeClock())
        try:
            workload.measure(workload, sizes, repeats)
            assert [task for task, _ in runner.PROGRESS.finished] == plan, workload.name
        finally:
            runner.PROGRESS.start([])


def without(*absent):
    """module_installed as on a machine where the `absent` modules are not installed."""
    return lambda module: module not in absent


PEERS_AND_EXTRAS = ("torch", "autograd", "sklearn", "matplotlib")


def test_a_library_whose_module_is_missing_is_left_out(bench, monkeypatch):
    runner, _ = bench
    monkeypatch.setattr(runner, "module_installed", without("torch"))
    libraries = ["tapegrad", "PyTorch", "torch.compile", "HIPS autograd", "reference"]
    assert runner.available(libraries) == ["tapegrad", "HIPS autograd", "reference"]
    assert runner.missing(libraries) == ["PyTorch", "torch.compile"]


def test_one_notice_per_missing_module_says_what_is_skipped_and_how_to_get_it(
        bench, compare, monkeypatch):
    runner, workloads = bench
    monkeypatch.setattr(runner, "module_installed", without(*PEERS_AND_EXTRAS))
    monkeypatch.setattr(workloads.mlp, "DIGITS", False)
    assert compare.skip_notices(workloads.REGISTRY, Path("RESULTS.png")) == [
        "Skipped the PyTorch and torch.compile rows: torch is not installed; "
        "`pip install torch`",
        "Skipped the HIPS autograd rows: autograd is not installed; "
        '`pip install ".[bench]"` (or `pip install autograd`)',
        "The MLP workloads run on random data of the digits' shape: scikit-learn is not "
        'installed; `pip install ".[bench]"` (or `pip install scikit-learn`)',
        'No chart (RESULTS.png): matplotlib is not installed; `pip install ".[bench]"` '
        "(or `pip install matplotlib`)",
    ]
    quick = [workload.for_mode("quick") for workload in workloads.REGISTRY]
    assert "torch.compile" not in compare.skip_notices(quick, Path("RESULTS.png"))[0]
    monkeypatch.setattr(runner, "module_installed", lambda module: True)
    monkeypatch.setattr(workloads.mlp, "DIGITS", True)
    assert compare.skip_notices(workloads.REGISTRY, Path("RESULTS.png")) == []


def test_a_quick_run_without_the_optional_modules_marks_what_it_skipped(
        bench, compare, monkeypatch, tmp_path, capsys):
    runner, workloads = bench
    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    monkeypatch.setattr(runner, "module_installed", without(*PEERS_AND_EXTRAS))
    monkeypatch.setattr(workloads.mlp, "DIGITS", False)
    output = tmp_path / "not yet made" / "results.md"
    compare.main(["--quick", "--output", str(output)])
    text = output.read_text()
    notices = compare.skip_notices([w.for_mode("quick") for w in workloads.REGISTRY],
                                   output.with_suffix(".png"))
    assert len(notices) == 4
    for notice in notices:
        assert f"- {notice}\n" in text
    assert not output.with_suffix(".png").exists()
    assert "![chart]" not in text
    # Under each table of a workload with a peer: the peers it left out.
    # scalar, elementwise, mlp, gmm, lstsq; hvp has no HIPS autograd row, and the quick ode
    # runs no peer.
    assert text.count("\n\nNot run here (not installed): PyTorch, HIPS autograd.\n") == 5
    assert text.count("\n\nNot run here (not installed): PyTorch.\n") == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == notices  # and no progress line: stderr is not a terminal
    assert f"\nwrote {output} in " in out
