"""The README is tested: every ``bash`` and ``python`` block runs, every ``yaml`` block is
checked by the config loader, so a documented command that stops working fails here.

Each bash/python block is matched by exactly one entry of :data:`SUBSTITUTIONS` (keyed by a
snippet of the block) that says how it runs: as written, with textual substitutions (a
smoke-sized run, a synthetic CSV, the checkpoint of this module's one tiny training run),
or — a synopsis with ``[--option]`` brackets — as ``--help`` plus a check that the help
accepts every option the block shows. A ``python -m experiments.run`` line that another test
needs too is run once per session, in-process on the session's Ray, by a fixture of
``tests/readme_runs.py`` that takes the line from the README; the block's entry names the
fixture, the line is dropped from the shell script and the run's phases must have finished.
The Python API block runs in-process too (on the session's Ray). A block without an entry,
or an entry whose block is gone, fails. Plain ``` blocks (output samples, trees) are not run.

Every block runs in one temp working directory shared by the module (``results/`` and
``.algospace/cache`` land there, never in the repository), with ``.venv/bin/`` read as the
bin folder of the interpreter running pytest and the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.readme_runs import KEYS, MARK, ReadmeRun
from tests.test_resume import _kill_session

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
REPO_VENV = (REPO / ".venv").resolve() == BIN.parent.resolve()
"""Whether pytest runs on the repository's own .venv (CI): only then do ``setup.sh`` and
``test.sh`` run (elsewhere they would build a second .venv)."""

RAY = (pytest.mark.slow, pytest.mark.ray, pytest.mark.train)
ONE_ITER = " --set stop.iterations=1"
SYNTH = '{bin}/algospace data synth --out "ES - 5 min.csv" --days 60\n'


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    """Line number of its opening fence."""
    lang: str
    text: str

    @property
    def id(self) -> str:
        """The test id, e.g. ``readme_L97_bash``."""
        return f"readme_L{self.line}_{self.lang or 'plain'}"


@dataclass(frozen=True)
class Entry:
    """How one README block runs."""

    subs: tuple[tuple[str, str], ...] = ()
    """Textual substitutions (old, new), each of which must apply."""
    help: str = ""
    """For a synopsis: the command run with ``--help`` instead of the block."""
    setup: str = ""
    """Shell run before the block (e.g. writing a synthetic CSV)."""
    marks: tuple[pytest.MarkDecorator, ...] = ()
    needs_checkpoint: bool = False
    """``{checkpoint}`` is the shared tiny run's best checkpoint."""
    cluster: bool = False
    """Runs in a session of its own, killed whole at the end, with a temp ``HOME``."""
    timeout: int = 300
    fixtures: tuple[str, ...] = ()
    """Fixtures of ``tests/readme_runs.py`` that run this block's ``experiments.run``
    lines (each named there by its arguments)."""
    in_process: bool = False
    """A python block run by ``exec`` in this process, in the session's Ray."""


SUBSTITUTIONS: dict[str, Entry] = {
    "bash scripts/setup.sh && .venv/bin/python -m experiments.run strategic.yaml": Entry(
        subs=(("bash scripts/setup.sh", "{setup_sh}"),), fixtures=("readme_quick_start",),
        marks=RAY),
    "bash scripts/test.sh\n": Entry(subs=(("scripts/test.sh", "scripts/test.sh --fast "
                                           "--collect-only -q"),), marks=(pytest.mark.slow,)),
    'data validate "ES - 5 min.csv"': Entry(setup=SYNTH),
    "regime train --synthetic --days 500": Entry(
        subs=(("--days 500", "--days 40 --epochs 1"),), marks=(pytest.mark.train,)),
    "from envs import joint_v0": Entry(),
    "experiments.run strategic.yaml [--quick]": Entry(help="{bin}/python -m experiments.run"),
    "experiments.run pipeline.yaml --quick": Entry(
        # the full curriculum is the line above without --quick: not run twice
        subs=((".venv/bin/python -m experiments.run pipeline.yaml           #", "true  #"),),
        fixtures=("readme_pipeline",), marks=RAY),
    "sweeps/strategic_grid.yaml": Entry(fixtures=("readme_grid_sweep", "readme_asha_sweep"),
                                        marks=RAY),
    "experiments.run walkforward.yaml --quick": Entry(
        # the full walk-forward is the line above without --quick: not run twice
        subs=((".venv/bin/python -m experiments.run walkforward.yaml           #", "true  #"),),
        fixtures=("readme_walkforward",), marks=RAY),
    "ray get-auth-token --generate": Entry(
        subs=(("6379", "{port}"), ("--dashboard-host=127.0.0.1",
                                   "--dashboard-host=127.0.0.1 --dashboard-port={dport}"),
              ("/tmp/ray-worker", "{short}/ray-worker"),
              ("rde.yaml --quick", "rde.yaml --quick" + ONE_ITER),
              ("strategic.yaml --quick", "strategic.yaml --quick" + ONE_ITER)),
        marks=RAY, cluster=True, timeout=600),
    "algospace.run_experiment(": Entry(
        # run_experiment is driver.run, the quick start's own path (readme_quick_start runs
        # it whole, the regime detector first and the final evaluation): here only the call
        subs=(('quick=True)', 'quick=True, sets=["stop.iterations=1", '
               '"env.regime_latent=false", "evaluation.final=false"])'),
              ('TrainConfig(env="strategic_v0", iterations=80)',
               'TrainConfig(env="strategic_v0", iterations=1, env_config=SMALL, '
               'ppo=PPOSettings(train_batch_size=400, minibatch_size=200, num_epochs=1))'),
              ('EnvConfig(split="test")', 'dataclasses.replace(SMALL, split="test")'),
              ("import algospace\n", "import algospace\nimport dataclasses\n"
               "from algospace.config import DataConfig, PPOSettings\n"
               "from algospace.data.synthetic import SyntheticConfig\n"
               "SMALL = algospace.EnvConfig(data=DataConfig(synthetic=SyntheticConfig(days=20)))"
               "\n")),
        in_process=True, marks=RAY),
    "algospace evaluate results/strategic_v0": Entry(help="{bin}/algospace evaluate"),
    "algospace decide CHECKPOINT [--data": Entry(help="{bin}/algospace decide"),
    "DecisionEngine.from_checkpoint(": Entry(
        subs=(('"results/strategic/.../checkpoint_000039"', '"{checkpoint}"'),),
        setup="{bin}/algospace data synth --out bars.csv --days 20\n",
        marks=(pytest.mark.slow,), needs_checkpoint=True),
    "data synth --out synth.csv --days 250": Entry(subs=(("--days 250", "--days 60"),)),
    "experiments.bench market [": Entry(help="{bin}/python -m experiments.bench market"),
    "experiments.bench data [": Entry(help="{bin}/python -m experiments.bench data"),
    "experiments.bench env [": Entry(help="{bin}/python -m experiments.bench env"),
    "experiments.bench learn [": Entry(help="{bin}/python -m experiments.bench learn"),
    "experiments.bench train [": Entry(help="{bin}/python -m experiments.bench train"),
    "experiments.bench team [": Entry(help="{bin}/python -m experiments.bench team"),
    "experiments.bench probes [": Entry(help="{bin}/python -m experiments.bench probes"),
    "experiments.bench probes --signals 1,3,6,12": Entry(
        subs=(("--signals 1,3,6,12 --seeds 0", "--signals 12 --seeds 0 --quick"),)),
    "experiments.bench latency [": Entry(help="{bin}/python -m experiments.bench latency"),
    "experiments.bench uncertainty [": Entry(
        help="{bin}/python -m experiments.bench uncertainty"),
    "data.synthetic.signal=12 --set data.synthetic.days=120": Entry(
        # the 12x curriculum's overrides must hold: they are data and env keys, the same in
        # every phase (a pipeline passes its --set to each), so one phase of one iteration
        # checks them; the "pipeline.yaml --quick" block runs the five phases
        subs=(("pipeline.yaml --set", "strategic.yaml --quick --set evaluation.final=false"
               + ONE_ITER + " --set"),
              ("days=120", "days=20")),
        marks=RAY, timeout=600),
    "experiments.bench learn --signal 6": Entry(
        subs=(("--iterations 25 --eval-every 25 --seeds 0",
               "--iterations 1 --eval-every 1 --seeds 0 --eval-days 60"),),
        marks=RAY, timeout=600),
    "experiments.bench latency --repeats 200": Entry(
        subs=(("--repeats 200 --history-days 30,1260", "--repeats 3 --history-days 10"),)),
}
"""Every bash/python block of the README, keyed by a snippet of it, and how it runs."""


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        assert end is not None, f"README.md line {i + 1}: unclosed ``` block"
        blocks.append(Block(i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n"))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.lang in ("bash", "python")]


def entry_of(block: Block) -> Entry | None:
    """The one entry whose key the block holds (None: none or several)."""
    found = [entry for key, entry in SUBSTITUTIONS.items() if key in block.text]
    return found[0] if len(found) == 1 else None


def test_every_block_has_exactly_one_entry() -> None:
    """A new bash/python block needs its entry; an entry whose block is gone fails too."""
    assert all(b.lang in ("bash", "python", "yaml", "") for b in BLOCKS), \
        [b.id for b in BLOCKS if b.lang not in ("bash", "python", "yaml", "")]
    for block in RUN:
        keys = [key for key in SUBSTITUTIONS if key in block.text]
        assert len(keys) == 1, (f"README.md line {block.line}: a {block.lang} block matched by "
                                f"{len(keys)} SUBSTITUTIONS keys {keys}; add it to "
                                "SUBSTITUTIONS in tests/test_readme.py (one key per block)")
    for key in SUBSTITUTIONS:
        holders = [b.line for b in RUN if key in b.text]
        assert len(holders) == 1, (f"SUBSTITUTIONS key {key!r} matches README blocks at lines "
                                   f"{holders}; update or remove the entry")


def test_readme_blocks_parse() -> None:
    """The parser finds the blocks the README has (a broken fence would hide some)."""
    text = README.read_text(encoding="utf-8")
    assert len(BLOCKS) * 2 == len(re.findall(r"^```", text, flags=re.M))
    assert readme_blocks("a\n```bash\nx\ny\n```\n```\nz\n```\n") == [
        Block(2, "bash", "x\ny\n"), Block(6, "", "z\n")]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory every block of this module runs in."""
    return tmp_path_factory.mktemp("readme")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _expand(text: str, work: Path, values: dict[str, str]) -> str:
    """``.venv/bin/`` as this interpreter's bin folder, then the ``{name}`` placeholders."""
    text = text.replace(".venv/bin/", "{bin}/").replace("bash scripts/", "bash {repo}/scripts/")
    setup_sh = "bash {repo}/scripts/setup.sh" if REPO_VENV else "true"
    for name, value in {"setup_sh": setup_sh, "bin": str(BIN), "repo": str(REPO),
                        "work": str(work), **values}.items():
        text = text.replace("{" + name + "}", value)
    return text


def _env(home: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    if home is not None:
        env["HOME"] = str(home)
    return env


def _run(cmd: list[str], work: Path, entry: Entry, home: Path | None = None) -> str:
    """Run ``cmd`` in ``work``; its output, or a failure with the output's tail."""
    proc = subprocess.Popen(cmd, cwd=work, env=_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            start_new_session=entry.cluster)
    try:
        out, _ = proc.communicate(timeout=entry.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} timed out after {entry.timeout} s:\n{out[-4000:]}")
    finally:
        if entry.cluster:  # the nodes `ray start` left running in the block's session
            with contextlib.suppress(AssertionError):
                _kill_session(proc.pid)
    assert proc.returncode == 0, f"exit status {proc.returncode}:\n{out[-6000:]}"
    return out


def _substituted(block: Block, entry: Entry) -> str:
    text = block.text
    for old, new in entry.subs:
        assert old in text, f"substitution {old!r} no longer applies to README line {block.line}"
        text = text.replace(old, new)
    return text


def _check_synopsis(block: Block, entry: Entry, work: Path) -> None:
    """The synopsis's command takes ``--help``, and its help names every option shown."""
    assert "[--" in block.text, f"README line {block.line}: no [--option] synopsis"
    help_text = _run([*_expand(entry.help, work, {}).split(), "--help"], work, entry)
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", block.text))
    missing = sorted(o for o in shown if not re.search(rf"(?<![\w-]){o}(?![\w-])", help_text))
    assert not missing, f"README line {block.line} shows options its --help lacks: {missing}"


def _served(block: Block, text: str, entry: Entry, request: pytest.FixtureRequest) -> str:
    """``text`` without the lines the entry's fixtures run; each of those runs finished."""
    for name in entry.fixtures:
        line = MARK + KEYS[name]
        assert line in text, f"README line {block.line}: no `{line}` (tests/readme_runs.py)"
        text = text.replace(line, "true")
        done: ReadmeRun = request.getfixturevalue(name)
        assert done.summaries, done.argv
        for summary in done.summaries:
            assert summary["status"] == "finished", (done.argv, summary["status"])
            path = Path(summary["experiment_dir"]) / "summary.json"
            assert json.loads(path.read_text())["status"] == "finished", path
    return text


@pytest.mark.parametrize("block", [
    pytest.param(b, id=b.id, marks=getattr(entry_of(b), "marks", ())) for b in RUN])
def test_block(block: Block, work: Path, request: pytest.FixtureRequest,
               monkeypatch: pytest.MonkeyPatch) -> None:
    """Run one bash/python block of the README as its entry says."""
    entry = entry_of(block)
    assert entry is not None, (f"README.md line {block.line}: add this {block.lang} block to "
                               "SUBSTITUTIONS in tests/test_readme.py")
    if entry.help:
        _check_synopsis(block, entry, work)
        return
    if "test.sh" in block.text and not REPO_VENV:
        pytest.skip("scripts/test.sh runs on the repository's .venv; pytest runs on another")
    # {short}: a short temp path (a Ray node's socket paths must stay under 108 bytes)
    values = {"port": str(_free_port()), "dport": str(_free_port()),
              "short": tempfile.mkdtemp(prefix="rs", dir="/tmp")}
    if entry.needs_checkpoint:
        values["checkpoint"] = request.getfixturevalue("checkpoint")
    if entry.setup:
        _run(["bash", "-c", _expand(entry.setup, work, values)], work, entry)
    code = _expand(_served(block, _substituted(block, entry), entry, request), work, values)
    if entry.in_process:  # on the session's Ray, in the module's working directory
        request.getfixturevalue("ray_session")
        monkeypatch.chdir(work)
        exec(compile(code, f"README.md line {block.line}", "exec"), {"__name__": "__main__"})
        return
    script = work / f"{block.id}.{'sh' if block.lang == 'bash' else 'py'}"
    script.write_text(code)
    home = work / "home" if entry.cluster else None
    if home is not None:
        home.mkdir(exist_ok=True)
    cmd = ["bash", "-euo", "pipefail", str(script)] if block.lang == "bash" \
        else [sys.executable, str(script)]
    try:
        _run(cmd, work, entry, home)
    finally:
        shutil.rmtree(values["short"], ignore_errors=True)


@pytest.fixture(scope="module")
def checkpoint(readme_quick_start: ReadmeRun) -> str:
    """The best checkpoint of the quick start's run (tests/readme_runs.py)."""
    return str(readme_quick_start.summaries[-1]["best_checkpoint"])


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in BLOCKS
                                   if b.lang == "yaml"])
def test_yaml_block(block: Block) -> None:
    """A phase YAML block builds through the experiment loader, a ``data:`` one through the
    data section's loader (unknown keys and wrong types would fail)."""
    from algospace.config.data import load_data_config
    from algospace.config.loader import experiment_from_raw

    raw: Any = yaml.safe_load(block.text)
    assert isinstance(raw, dict) and raw, f"README line {block.line}: not a YAML mapping"
    if "phase" in raw:
        experiment_from_raw(raw, f"README.md line {block.line}")
    else:
        assert set(raw) == {"data"}, f"README line {block.line}: neither a phase nor data:"
        load_data_config(raw["data"])


RESULTS_TREE = next(b for b in BLOCKS if b.lang == "" and b.text.startswith("results/"))


def _tree_patterns(text: str) -> set[str]:
    """The glob patterns of the files and folders some lines of the results tree name."""
    names = [tok for tok in (line.split()[0] for line in text.splitlines() if line.strip())
             if tok.endswith("/") or re.fullmatch(r"[\w<>-]+\.[a-z]+", tok)]
    names += re.findall(r"[\w.*]+\.(?:json|csv|html|png|tfevents\.\*)", text)
    return {re.sub(r"<[^>]*>|\d{6}", "*", name.rstrip("/")) for name in names
            if "-2" not in name}


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.train
def test_results_tree_names_what_a_run_writes(readme_quick_start: ReadmeRun,
                                              readme_walkforward: ReadmeRun) -> None:
    """Every file and folder the "Outputs" tree names is in the quick start's run folder
    (but ``evaluation-<split>-2/``, which a later ``algospace evaluate`` writes), those of
    its ``walkforward/`` line in the README's walk-forward run folder."""
    lines = RESULTS_TREE.text.splitlines()[1:]
    walk = [line for line in lines if line.split()[0] == "walkforward/"]
    assert len(walk) == 1, f"README's results tree (line {RESULTS_TREE.line}): no walkforward/"
    plain = _tree_patterns("\n".join(line for line in lines if line not in walk))
    assert len(plain) >= 10, plain
    for done, patterns in ((readme_quick_start, plain),
                           (readme_walkforward, _tree_patterns(walk[0]))):
        run = Path(done.summaries[-1]["experiment_dir"])
        missing = sorted(p for p in patterns if not any(run.rglob(p)))
        assert not missing, f"README's results tree (line {RESULTS_TREE.line}) names " \
            f"{missing}, which a run does not write ({run})"
