"""MAPPO on RLlib's new API stack: decentralised actors, one centralized critic.

Every actor module (``algospace.models.actor.ActorModule``) stores, with each
action it samples, its MC-dropout statistics (``mc_stats``, 6 numbers). On the
learner:

1. :class:`RowColumns` joins those statistics across agents into the 15
   MC features of DESIGN §6 for every training row. For a row of agent *a* at
   5-minute row *r* (the env's ``info["row"]``), each agent contributes the
   statistics of its latest decision at or before *r* — exactly what the
   actors had computed when they acted. Strategic agents in ``joint_v0``
   therefore count with their last 30-minute decision. Requires
   ``batch_mode="complete_episodes"`` (every agent acts at an episode's first
   step, so every agent has a decision to count).
2. :class:`RowGAE` replaces RLlib's GAE piece: the values come from the
   shared ``critic`` module (112-d state + 15 MC features) on each actor's own
   rows, then GAE(γ, λ) per agent episode; advantages are standardised per
   module. A row's transition to the agent's next row is discounted by
   ``γ ** k`` for the ``k`` env steps between them (``steps_to_next``, from the
   env's ``info["clock"]``): k = 1 everywhere except for the strategic agents
   of ``joint_v0``, whose rows are 30-minute decisions 6 five-minute steps
   apart (their reward is the sum of the team rewards in between discounted
   inside, Σ γ^i r_i, see :mod:`envs.rllib`, so the two agree).
3. :class:`MAPPOTorchLearner` adds the critic's loss (on value-normalised
   targets, optional clipping and Huber) to each actor's PPO loss on the same
   rows — the critic never gets its own N-times-larger batch. The critic's
   parameters receive the gradients of every actor's rows and are stepped by
   its own optimizer.

With ``model.train_dropout`` each step also stores the dropout mask the action was drawn
under (``dropout_mask``, packed bits, :mod:`algospace.models.consistent_dropout`). RLlib's
``AddColumnsFromEpisodesToTrainBatch`` carries it into the train batch like the other extra
outputs (``action_logp``, ``action_dist_inputs``), and the actor's training forward
recomputes the logits under it, so the PPO loss's log-probability, entropy and KL (and the
diagnostics below) are those of the network the action was sampled from: the ratio is 1 at
the first minibatch of an iteration (tested through this learner, MAPPO and IPPO).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import (
    AddColumnsFromEpisodesToTrainBatch,
    AddObservationsFromEpisodesToBatch,
    AddOneTsToEpisodesAndTruncate,
    AddStatesFromEpisodesToBatch,
    AddTimeDimToBatchAndZeroPad,
    AgentToModuleMapping,
    BatchIndividualItems,
    GeneralAdvantageEstimation,
    NumpyToTensor,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override

from algospace.config import CONSENSUS_THRESHOLD, STRATEGIC_AGENTS, TACTICAL_AGENTS
from algospace.models.actor import MC_STATS
from algospace.models.critic import MC_FEATURES_KEY, critic_loss
from algospace.models.ids import CRITIC_ID
from algospace.models.mc_dropout import joint_features
from algospace.ray_compat import FiniteOnce, OwnMinibatches
from algospace.training.critic_rows import ROW_KEY, row_keys, shared_values
from algospace.training.diagnostics import ROWS_TRAINED, log_value_diagnostics
from algospace.training.gae import standardised_advantages, value_targets
from algospace.training.minibatch import ModuleMinibatches
from algospace.training.ppo_loss import (
    actor_loss,
    fast_path,
    masked_sum,
    policy_figures,
    row_mask,
)
from algospace.training.sampler_episodes import INFO_COLUMNS

VF_PREDS_NORM = "vf_preds_norm"
"""Batch column: the shared critic's own (normalised) output for each row at sampling time,
the anchor of value clipping (compared with the same network's output in the loss)."""
STEPS_TO_NEXT = "steps_to_next"
"""Batch column: env steps from a row's observation to the agent's next one (1, or up to 6
for a strategic agent in joint_v0); GAE discounts that transition by ``gamma ** steps``."""


class RowColumns(ConnectorV2):
    """Learner piece: per-row columns read from the episodes.

    ``steps_to_next`` always; with ``mc_features`` (the shared critic) also the 15 joint MC
    features of every row, from the statistics the actors stored when they acted, and the
    row's key (:data:`~algospace.training.critic_rows.ROW_KEY`: rows with the same key
    have the same critic input).
    """

    def __init__(self, *args: Any, mc_features: bool = True,
                 threshold: float = CONSENSUS_THRESHOLD, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mc_features = mc_features
        self.threshold = threshold

    @override(ConnectorV2)
    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any],
                 **kwargs: Any) -> Any:
        parents = {ep.id_: (i, ep) for i, ep in enumerate(episodes)}
        timelines: dict[str, Any] = {}
        for sa in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            if self.mc_features:
                parent_id = sa.multi_agent_episode_id
                index, parent = parents[parent_id]
                if parent_id not in timelines:
                    timelines[parent_id] = _episode_features(parent, self.threshold)
                timeline, seen, joined = timelines[parent_id]
                own = timeline.get(str(sa.agent_id))  # this episode's rows, read once
                rows = own[0] if own is not None and len(own[0]) == len(sa) else _rows(sa)
                at = np.minimum(np.searchsorted(seen, rows), max(len(seen) - 1, 0))
                feats = (joined[at] if len(seen) and np.array_equal(seen[at], rows)
                         else _features(rows, timeline, self.threshold))
                self.add_n_batch_items(batch, MC_FEATURES_KEY, items_to_add=feats,
                                       num_items=len(sa), single_agent_episode=sa)
                self.add_n_batch_items(batch, ROW_KEY, items_to_add=row_keys(index, rows),
                                       num_items=len(sa), single_agent_episode=sa)
            self.add_n_batch_items(batch, STEPS_TO_NEXT, items_to_add=_steps_to_next(sa),
                                   num_items=len(sa), single_agent_episode=sa)
        return batch


def _info_column(sa: Any, key: str) -> np.ndarray:
    """The env's ``info[key]`` at each of an agent episode's observations (int64): from the
    vectorised sampler's info columns (:data:`~algospace.training.sampler_episodes.INFO_COLUMNS`),
    else from the stock runner's info dicts. The pipeline's bootstrap row (a copy of the final
    observation) repeats the final info in the dicts only."""
    columns = sa.custom_data.get(INFO_COLUMNS)
    if columns is not None:
        return np.asarray(columns[key], dtype=np.int64)
    return np.asarray([int(info[key]) for info in sa.get_infos()], dtype=np.int64)


def _rows(sa: Any) -> np.ndarray:
    """The env's 5-minute row (``info["row"]``) at each of an agent episode's rows."""
    rows = _info_column(sa, "row")
    n = len(sa)
    return rows[np.minimum(np.arange(n), len(rows) - 1)]


def _steps_to_next(sa: Any) -> np.ndarray:
    """Env steps between each row's observation and the next one (1 for the last row).

    The observations of an agent episode run one past its rows (the final observation), so
    the last real row sees the final observation; the row the learner pipeline appends to
    bootstrap from (a copy of the final observation) gets 1.
    """
    clock = _info_column(sa, "clock")
    n = len(sa)
    steps = np.ones(n, dtype=np.float32)
    m = min(n, len(clock) - 1)
    steps[:m] = np.maximum(clock[1:m + 1] - clock[:m], 1)
    return steps


def _timeline(agent_episodes: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per agent: the row of each of its decisions and the MC statistics it computed."""
    out = {}
    for agent, sa in agent_episodes.items():
        if len(sa) == 0:
            continue
        stats = np.asarray(sa.get_extra_model_outputs(MC_STATS), dtype=np.float32)
        out[agent] = (_rows(sa), stats.reshape(len(sa), -1))
    return out


def _episode_features(episode: Any, threshold: float) -> tuple[Any, np.ndarray, np.ndarray]:
    """An episode's agent timelines, every row any of its agents has (sorted, once) and
    the 15 features at each: the features depend on the row only, not on whose it is."""
    timeline = _timeline(episode.agent_episodes)
    seen = np.unique(np.concatenate([r for r, _ in timeline.values()] or [np.zeros(0, int)]))
    return timeline, seen, _features(seen, timeline, threshold)


def _features(rows: np.ndarray, timeline: dict[str, tuple[np.ndarray, np.ndarray]],
              threshold: float) -> np.ndarray:
    """[len(rows), 15]: each agent's latest statistics at or before each row, joined."""
    def layer(agents: Iterable[str]) -> torch.Tensor | None:
        present = [a for a in agents if a in timeline]
        if not present:
            return None
        stacked = []
        for agent in present:
            agent_rows, stats = timeline[agent]
            idx = np.searchsorted(agent_rows, rows, side="right") - 1
            stacked.append(stats[np.clip(idx, 0, None)])
        return torch.as_tensor(np.stack(stacked, axis=1))

    joined = joint_features(layer(STRATEGIC_AGENTS), layer(TACTICAL_AGENTS),
                            threshold=threshold)
    return joined.numpy().astype(np.float32)


class RowGAE(GeneralAdvantageEstimation):
    """GAE with a discount per row; values from the shared critic or each actor's own.

    ``shared_critic=True`` (MAPPO): the ``critic`` module values each actor's rows and
    its value normalisation is updated with all the targets. False (IPPO): each module's
    own ``compute_values``.
    """

    def __init__(self, *args: Any, shared_critic: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_critic = shared_critic

    @override(GeneralAdvantageEstimation)
    def __call__(self, *, rl_module: Any, episodes: list[Any], batch: dict[str, Any],
                 metrics: Any = None, **kwargs: Any) -> Any:
        critic = rl_module[CRITIC_ID] if self.shared_critic else None
        sa_episodes = list(self.single_agent_episode_iterator(episodes,
                                                              agents_that_stepped_only=False))
        targets_all = []
        results: dict[str, dict[str, np.ndarray]] = {}
        diagnostics = {}
        with torch.no_grad():
            shared = {} if critic is None else shared_values(
                critic, batch, sorted(m for m in batch if m != CRITIC_ID))
        for module_id, module_batch in sorted(batch.items()):
            if module_id == CRITIC_ID:
                continue
            valuer = critic if critic is not None else rl_module[module_id]
            with torch.no_grad():
                if critic is not None:  # the network's own output, before the stats move
                    values_norm = shared[module_id] if module_id in shared \
                        else critic.normalised_values(module_batch)
                    values = critic.denormalise(values_norm).cpu().numpy()
                    values_norm = values_norm.cpu().numpy()
                else:
                    values = valuer.compute_values(module_batch).cpu().numpy()
                    values_norm = values
            lens = [len(e) for e in sa_episodes if e.module_id in (None, module_id)]
            steps = _np(module_batch[STEPS_TO_NEXT]) if STEPS_TO_NEXT in module_batch \
                else np.ones_like(values)
            targets = value_targets(
                values=values,
                rewards=_np(module_batch[Columns.REWARDS]),
                terminateds=_np(module_batch[Columns.TERMINATEDS]),
                truncateds=_np(module_batch[Columns.TRUNCATEDS]),
                gammas=self.gamma ** steps.astype(np.float64), lambda_=self.lambda_)
            assert targets.shape[0] == sum(lens)
            # the row appended per episode to bootstrap from is no training row: it stays
            # out of the loss (its mask), the advantage statistics and the value statistics
            real = _np(module_batch[Columns.LOSS_MASK]).astype(bool) \
                if Columns.LOSS_MASK in module_batch else np.ones(len(values), bool)
            adv = standardised_advantages(targets, values, real)
            results[module_id] = {Postprocessing.ADVANTAGES: adv.astype(np.float32),
                                  Postprocessing.VALUE_TARGETS: targets.astype(np.float32),
                                  Columns.VF_PREDS: values.astype(np.float32),
                                  VF_PREDS_NORM: values_norm.astype(np.float32)}
            targets_all.append(targets[real])
            diagnostics[module_id] = (values[real], targets[real], len(values))
        if targets_all and critic is not None:
            critic.update_value_norm(torch.as_tensor(np.concatenate(targets_all)))
        for module_id, cols in results.items():
            device = next(rl_module[module_id].parameters()).device
            for key, value in cols.items():
                batch[module_id][key] = torch.as_tensor(value, device=device)
        if metrics is not None:
            log_value_diagnostics(metrics, diagnostics, critic)
        # RLlib fills the batch in the order of a Python set of agent ids, which changes with
        # PYTHONHASHSEED; the minibatch shuffles and the loss follow the batch's module order
        return {module_id: batch[module_id] for module_id in sorted(batch)}


def _np(x: Any) -> np.ndarray:
    """A tensor or array as numpy."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class RowPPOConfig(PPOConfig):
    """RLlib's PPOConfig whose learner pipeline carries :class:`RowColumns` and :class:`RowGAE`.

    Built with ``add_default_connectors_to_learner_pipeline=False`` (see
    :func:`algospace.training.builder.build_ppo_config`), so that RLlib's PPO learner adds
    neither its extra bootstrap step nor its GAE piece; :meth:`build_learner_connector`
    builds the same pipeline RLlib's defaults give PPO, in the same order, through public
    connector classes only, with :class:`RowColumns` after the train-batch columns and
    :class:`RowGAE` in place of GAE. ``learner_config_dict["shared_critic"]`` says whether
    the values come from the shared critic (MAPPO) or from each module (IPPO).
    """

    @override(PPOConfig)
    def build_learner_connector(self, input_observation_space: Any, input_action_space: Any,
                                device: Any = None) -> Any:
        pipeline = super().build_learner_connector(input_observation_space, input_action_space,
                                                   device=device)
        shared = bool(self.learner_config_dict.get("shared_critic", False))
        specs = (self.rl_module_spec.rl_module_specs
                 if isinstance(self.rl_module_spec, MultiRLModuleSpec) else set(self.policies))
        for piece in (
                AddOneTsToEpisodesAndTruncate(),
                AddObservationsFromEpisodesToBatch(as_learner_connector=True),
                AddColumnsFromEpisodesToTrainBatch(),
                RowColumns(mc_features=shared),
                AddTimeDimToBatchAndZeroPad(as_learner_connector=True),
                AddStatesFromEpisodesToBatch(as_learner_connector=True),
                AgentToModuleMapping(rl_module_specs=specs,
                                     agent_to_module_mapping_fn=self.policy_mapping_fn,
                                     as_learner_connector=True),
                BatchIndividualItems(multi_agent=True),
                NumpyToTensor(as_learner_connector=True, device=device),
                RowGAE(gamma=self.gamma, lambda_=self.lambda_, shared_critic=shared)):
            pipeline.append(piece)
        return pipeline


class RowPPOLearner(FiniteOnce, OwnMinibatches, PPOTorchLearner):
    """RLlib's PPO learner with per-module minibatches and per-iteration diagnostics.

    Minibatches: :class:`algospace.training.minibatch.ModuleMinibatches` (each module sees
    each of its rows ``num_epochs`` times, whatever its row count). Diagnostics: over all
    the iteration's minibatches, per module, the mean policy loss, entropy, approximate KL
    (``E[(r - 1) - log r]``), clip fraction and the rows trained (see
    :mod:`algospace.training.diagnostics`).
    """

    iteration_sums: dict[str, dict[str, Any]] | None = None
    """Per module: the sums (tensors, or floats) of the current update's minibatch figures."""

    @override(PPOTorchLearner)
    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        """RLlib's optimizer (Adam, the learning rate from its scheduler), in torch's fused
        implementation: one kernel per parameter group instead of a loop over tensors
        (the same update to float rounding; a third of the optimizer's time on a CPU)."""
        params = self.get_parameters(self.module[module_id])
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(
            params, fused=True), params=params, lr_or_lr_schedule=config.lr)

    def minibatches(self, batch: Any, *, num_epochs: int, minibatch_size: int | None,
                    shuffle: bool, num_total_minibatches: int) -> ModuleMinibatches:
        """Every module's rows ``num_epochs`` times, in the same number of minibatches."""
        return ModuleMinibatches(batch, num_epochs=num_epochs, minibatch_size=minibatch_size,
                                 shuffle=shuffle, num_total_minibatches=num_total_minibatches)

    @override(PPOTorchLearner)
    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict[str, Any],
                                fwd_out: dict[str, Any]) -> Any:
        """The PPO loss: :func:`algospace.training.ppo_loss.actor_loss` for our actors
        (RLlib's loss to float rounding, computed once with the diagnostics), else RLlib's
        own and the figures beside it."""
        module = self.module[module_id].unwrapped()
        if not fast_path(module, config):
            loss = super().compute_loss_for_module(module_id=module_id, config=config,
                                                   batch=batch, fwd_out=fwd_out)
            with torch.no_grad():
                self._accumulate(module_id, policy_figures(module, config, batch, fwd_out))
            return loss
        coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        loss, logged, figures = actor_loss(module, config, batch, fwd_out, coeff)
        self.metrics.log_dict(logged, key=module_id, window=1)
        self._accumulate(module_id, figures)
        return loss

    def _accumulate(self, module_id: str, figures: dict[str, Any]) -> None:
        """Add one minibatch's sums (floats or tensors) to the iteration's."""
        if self.iteration_sums is None:
            self.iteration_sums = {}
        sums = self.iteration_sums.setdefault(module_id, {})
        for key, value in figures.items():
            sums[key] = sums.get(key, 0.0) + value

    @override(PPOTorchLearner)
    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        done, self.iteration_sums = self.iteration_sums or {}, None
        for module_id, tensors in done.items():
            sums = {k: float(v) for k, v in tensors.items()}  # one read per figure
            valid = max(sums.pop("valid"), 1.0)
            figures = {k: (v if k == ROWS_TRAINED else v / valid) for k, v in sums.items()}
            self.metrics.log_dict(figures, key=module_id, window=1)


class MAPPOTorchLearner(RowPPOLearner):
    """PPO learner whose value function is the shared critic (see the module docstring)."""

    @override(PPOTorchLearner)
    def rl_module_required_apis(self) -> list[type]:
        return []

    shared: dict[str, torch.Tensor] | None = None  # the critic on each module's rows

    @override(PPOTorchLearner)
    def compute_losses(self, *, fwd_out: dict[str, Any], batch: dict[str, Any]) -> Any:
        """Each module's loss, the critic's output on all their rows computed first, in one
        call over the distinct rows."""
        critic = self.module[CRITIC_ID].unwrapped()
        self.shared = shared_values(critic, batch, sorted(m for m in fwd_out if m != CRITIC_ID))
        try:
            return super().compute_losses(fwd_out=fwd_out, batch=batch)
        finally:
            self.shared = None

    @override(PPOTorchLearner)
    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict[str, Any],
                                fwd_out: dict[str, Any]) -> Any:
        actor_loss = super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        critic = self.module[CRITIC_ID].unwrapped()
        pred = self.shared[module_id] if self.shared and module_id in self.shared \
            else critic.normalised_values(batch)
        # the targets in the statistics of now; the clip anchor is the network's own output
        # when the rows were valued (before this iteration's statistics update), so at the
        # first minibatch pred == anchor and every row is inside the clip range
        target = critic.normalise(batch[Postprocessing.VALUE_TARGETS])
        old = batch[VF_PREDS_NORM]
        extra = self.config.learner_config_dict
        clip = extra.get("value_clip")
        losses = critic_loss(pred, old, target, clip=clip, huber_delta=extra.get("huber_delta"))
        mask = row_mask(batch, losses)
        loss_sum = masked_sum(losses, mask)
        value_loss = loss_sum / mask.sum()
        self.metrics.log_value((module_id, "critic_loss"), value_loss, window=1)
        with torch.no_grad():
            clipped = ((pred - old).abs() > clip).to(losses.dtype) if clip is not None \
                else torch.zeros_like(losses)
            self._accumulate(module_id, {"mean_critic_loss": loss_sum.detach(),
                                         "value_clip_fraction": masked_sum(clipped, mask)})
        return actor_loss + config.vf_loss_coeff * value_loss


class IPPOTorchLearner(RowPPOLearner):
    """RLlib's PPO learner with each agent's own critic, and the per-row discount (the
    pipeline of :class:`RowPPOConfig` with ``shared_critic`` false)."""

