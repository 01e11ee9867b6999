"""TorchScript export of the actors: exported equals eager, the manifest's errors, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from algospace.config import DataConfig, EnvConfig
from algospace.errors import CheckpointError, ConfigError
from algospace.inference import export as export_mod
from algospace.inference.export import (
    MANIFEST,
    DropoutMLP,
    ExportedActor,
    ExportMismatchError,
    check_export,
    export_actors,
    load_exported,
)
from algospace.inference.policy import TeamPolicy
from algospace.models.actor import ActorModule, actor_mc_stats
from algospace.training.builder import votes_for
from envs.joint import JointEnv
from envs.rllib import LAYER_GROUPS, LayerSharing

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")

HIDDEN = (32, 16)
KINDS = {"mlmi": (7,), "fvg": (5,), "risk": (6, 6, 5)}
"""One agent of each action space: strategic Discrete(7), tactical Discrete(5), risk."""


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here on one torch thread (see the conftest fixture)."""


@pytest.fixture(scope="module")
def env(env_data: DataConfig) -> JointEnv:
    return JointEnv(EnvConfig(data=env_data))


def _actor(space_obs: Any, space_act: Any, agent: str) -> ActorModule:
    return ActorModule(observation_space=space_obs, action_space=space_act,
                       model_config={"hidden": HIDDEN, "votes": votes_for(agent)})


@pytest.fixture(scope="module")
def actors(env: JointEnv) -> dict[str, ActorModule]:
    """One module per agent (sharing="agent"), seeded weights."""
    torch.manual_seed(0)
    return {a: _actor(env.observation_space(a), env.action_space(a), a)
            for a in env.possible_agents}


@pytest.fixture(scope="module")
def exported(actors: dict[str, ActorModule], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, ExportedActor]:
    folder = export_actors(actors, tmp_path_factory.mktemp("export") / "actors")
    return load_exported(folder)


def _observations(env: JointEnv, steps: int, seed: int = 0) -> list[dict[str, Any]]:
    """Observations of ``steps`` env steps under uniform random actions."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps - 1):
        actions = {}
        for agent in env.agents:
            nvec = getattr(env.action_space(agent), "nvec", None)
            actions[agent] = (rng.integers(0, nvec) if nvec is not None
                              else int(rng.integers(env.action_space(agent).n)))
        obs, *_ = env.step(actions)
        if not env.agents:
            obs, _ = env.reset()
        out.append(obs)
    return out


# ---------------------------------------------------------------- equal outputs
@pytest.mark.parametrize("agent", sorted(KINDS))
def test_exported_logits_and_greedy_actions_equal_eager(
        agent: str, actors: dict[str, ActorModule], exported: dict[str, ExportedActor]) -> None:
    eager, other = actors[agent], exported[agent]
    assert other.input_lens == KINDS[agent] == eager.input_lens
    assert other.is_multi_discrete == (agent == "risk")
    assert (other.votes is None) == (agent == "risk")
    if other.votes is not None:
        assert torch.equal(other.votes, eager.votes)
    x = 2.0 * torch.randn(4096, eager.layers[0].in_features,
                          generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = eager.logits(x), other.logits(x)
    assert (a - b).abs().max() <= 1e-6
    for ha, hb in zip(torch.split(a, list(KINDS[agent]), -1),
                      torch.split(b, list(KINDS[agent]), -1), strict=True):
        assert torch.equal(ha.argmax(-1), hb.argmax(-1))


@pytest.mark.parametrize("agent", sorted(KINDS))
def test_scripted_dropout_draws_the_eager_masks(
        agent: str, actors: dict[str, ActorModule], exported: dict[str, ExportedActor]) -> None:
    x = torch.randn(64, actors[agent].layers[0].in_features)
    outs = []
    for actor in (actors[agent], exported[agent]):
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            outs.append((actor.logits(x, dropout=True), actor_mc_stats(actor, x[:8], 50)))
    (drop_a, stats_a), (drop_b, stats_b) = outs
    assert torch.equal(drop_a, drop_b)
    assert torch.equal(stats_a, stats_b)
    assert not torch.equal(drop_a, actors[agent].logits(x).detach())  # dropout was on


def test_check_export_reports_each_module(actors: dict[str, ActorModule],
                                          exported: dict[str, ExportedActor]) -> None:
    before = torch.random.get_rng_state()
    gaps = check_export(actors, exported)
    assert set(gaps) == set(actors)
    assert all(0.0 <= g <= 1e-5 for g in gaps.values())
    assert torch.equal(torch.random.get_rng_state(), before)


def test_check_export_fails_on_other_weights(actors: dict[str, ActorModule],
                                             exported: dict[str, ExportedActor]) -> None:
    net = DropoutMLP.of(actors["fvg"])
    with torch.no_grad():
        net.head.bias += 1e-3
    wrong = dict(exported, fvg=_wrap(net, exported["fvg"]))
    with pytest.raises(ExportMismatchError, match=r"'fvg': exported logits differ"):
        check_export(actors, wrong)


def test_check_export_fails_on_other_dropout(actors: dict[str, ActorModule],
                                             exported: dict[str, ExportedActor]) -> None:
    net = DropoutMLP.of(actors["mlmi"])
    net.p = 0.3  # same deterministic logits, other MC passes
    wrong = dict(exported, mlmi=_wrap(net, exported["mlmi"]))
    with pytest.raises(ExportMismatchError, match="'mlmi': MC-dropout statistics"):
        check_export(actors, wrong)


def _wrap(net: DropoutMLP, like: ExportedActor) -> ExportedActor:
    votes = None if like.votes is None else tuple(like.votes.tolist())
    return ExportedActor(torch.jit.script(net), module_id=like.module_id,
                         input_lens=like.input_lens, is_multi_discrete=like.is_multi_discrete,
                         votes=votes, dropout=like.dropout, local_width=like.local_width)


# ------------------------------------------------------------- on the team
def test_team_policy_acts_alike_on_env_observations(
        env: JointEnv, actors: dict[str, ActorModule],
        exported: dict[str, ExportedActor]) -> None:
    widths = {a: int(env.observation_space(a)["local"].shape[0]) for a in env.possible_agents}
    policies = [TeamPolicy(team, widths, mc_passes=8) for team in (actors, exported)]
    for i, obs in enumerate(_observations(env, 16)):
        results = [policy.act(obs, env.possible_agents, seed=i) for policy in policies]
        (act_a, conf_a, stats_a), (act_b, conf_b, stats_b) = results
        for agent in env.possible_agents:
            # the policy runs the weights it reads out of either form: the same numbers
            np.testing.assert_array_equal(act_a[agent], act_b[agent])
            assert conf_a[agent] == conf_b[agent]
            np.testing.assert_array_equal(stats_a[agent], stats_b[agent])
            # ... and acts as the TorchScript module's own logits say
            x = torch.as_tensor(policies[1].local(agent, obs[agent]))[None]
            heads = torch.split(exported[agent].logits(x)[0], list(exported[agent].input_lens))
            best = [int(torch.argmax(h)) for h in heads]
            np.testing.assert_array_equal(np.atleast_1d(act_b[agent]), best)


def test_layer_shared_modules_export(env: JointEnv, tmp_path: Path) -> None:
    spaces = {a: env.observation_space(a) for a in env.possible_agents}
    sharing = LayerSharing.for_spaces(spaces)
    torch.manual_seed(1)
    actors = {}
    for module_id, group in LAYER_GROUPS.items():
        first = group[0]
        actors[module_id] = _actor(sharing.space(first, spaces[first]),
                                   env.action_space(first), first)
    exported = load_exported(export_actors(actors, tmp_path / "layer"))
    assert sorted(exported) == ["risk", "strategic", "tactical"]
    widths = {a: int(sp["local"].shape[0]) for a, sp in spaces.items()}
    eager_policy, export_policy = TeamPolicy(actors, widths), TeamPolicy(exported, widths)
    assert export_policy.sharing == "layer"
    for obs in _observations(env, 12, seed=3):
        a, _, _ = eager_policy.act(obs, env.possible_agents)
        b, _, _ = export_policy.act(obs, env.possible_agents)
        for agent in env.possible_agents:
            np.testing.assert_array_equal(a[agent], b[agent])


def test_exported_actor_rejects_the_wrong_width(exported: dict[str, ExportedActor]) -> None:
    with pytest.raises(ValueError, match="'fvg' takes local observations of width"):
        exported["fvg"].logits(torch.zeros(1, exported["fvg"].local_width + 1))


# ------------------------------------------------------------ the folder
def test_manifest_describes_each_module(actors: dict[str, ActorModule], tmp_path: Path) -> None:
    folder = export_actors({"risk": actors["risk"], "fvg": actors["fvg"]}, tmp_path / "x")
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format_version"] == export_mod.FORMAT_VERSION
    assert manifest["torch"] == torch.__version__
    risk, fvg = manifest["modules"]["risk"], manifest["modules"]["fvg"]
    assert risk == {"file": "risk.pt", "input_lens": [6, 6, 5], "is_multi_discrete": True,
                    "votes": None, "dropout": 0.1, "hidden": list(HIDDEN),
                    "local_width": actors["risk"].layers[0].in_features}
    assert fvg["votes"] == pytest.approx(list(votes_for("fvg") or ()))
    assert sorted(p.name for p in folder.iterdir()) == ["fvg.pt", MANIFEST, "risk.pt"]


@pytest.fixture
def folder(actors: dict[str, ActorModule], tmp_path: Path) -> Path:
    return export_actors({"fvg": actors["fvg"]}, tmp_path / "one")


def _edit_manifest(folder: Path, **changes: Any) -> None:
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope does not exist; write it with .*export_"):
        load_exported(tmp_path / "nope")


def test_missing_manifest(folder: Path) -> None:
    (folder / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match=r"one has no manifest.json.*export_actors"):
        load_exported(folder)


def test_broken_manifest(folder: Path) -> None:
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"manifest\.json cannot be read"):
        load_exported(folder)


def test_unknown_format_version(folder: Path) -> None:
    _edit_manifest(folder, format_version=99)
    with pytest.raises(CheckpointError, match="format version 99, this version of AlgoSpace "
                                              "reads 1; export the checkpoint again"):
        load_exported(folder)


def test_broken_module_entry(folder: Path) -> None:
    _edit_manifest(folder, modules={"fvg": {"file": "../fvg.pt"}})
    with pytest.raises(CheckpointError, match="module 'fvg': broken entry"):
        load_exported(folder)


def test_missing_module_file(folder: Path) -> None:
    (folder / "fvg.pt").unlink()
    with pytest.raises(CheckpointError, match=r"module 'fvg': file .*fvg.pt is missing"):
        load_exported(folder)


def test_corrupt_module_file(folder: Path) -> None:
    (folder / "fvg.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="is not a TorchScript file"):
        load_exported(folder)


def test_manifest_that_does_not_fit_the_network(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["modules"]["fvg"]["input_lens"] = [7]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"gives 5 logits but input_lens \[7\] need 7"):
        load_exported(folder)


def test_existing_folder_needs_overwrite(actors: dict[str, ActorModule], folder: Path) -> None:
    with pytest.raises(ConfigError, match="already exists; pass overwrite=True"):
        export_actors({"fvg": actors["fvg"]}, folder)
    export_actors({"mlmi": actors["mlmi"]}, folder, overwrite=True)
    assert sorted(load_exported(folder)) == ["mlmi"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["one"]


def test_failed_export_leaves_no_folder(actors: dict[str, ActorModule], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[str] = []
    real_save = torch.jit.save

    def save_once(module: Any, path: str) -> None:
        if saved:
            raise OSError("disk full")
        saved.append(path)
        real_save(module, path)

    monkeypatch.setattr(torch.jit, "save", save_once)
    with pytest.raises(OSError, match="disk full"):
        export_actors(actors, tmp_path / "out")
    assert saved and list(tmp_path.iterdir()) == []


def test_failed_check_keeps_the_old_export(actors: dict[str, ActorModule], folder: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def mismatch(*args: Any, **kwargs: Any) -> dict[str, float]:
        raise ExportMismatchError("differ")

    monkeypatch.setattr(export_mod, "check_export", mismatch)
    with pytest.raises(ExportMismatchError, match="differ"):
        export_actors({"mlmi": actors["mlmi"]}, folder, overwrite=True)
    assert sorted(load_exported(folder)) == ["fvg"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["one"]


def test_module_ids_must_be_file_names(actors: dict[str, ActorModule], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be file names"):
        export_actors({"a/b": actors["fvg"]}, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []
