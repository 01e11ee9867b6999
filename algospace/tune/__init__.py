"""Running a phase (or a pipeline of phases) through Ray Tune.

Modules, one concern each: :mod:`~algospace.tune.plan` (the command's options, reading
and checking a phase before Ray starts), :mod:`~algospace.tune.handoff` (checkpoints of
earlier phases), :mod:`~algospace.tune.prepare` (the data, and the regime latents it
needs), :mod:`~algospace.tune.resume` (finding the run to continue),
:mod:`~algospace.tune.tuner` (Ray, the trainable, the Tuner),
:mod:`~algospace.tune.results` (best checkpoint, pruning, summary, final evaluation),
:mod:`~algospace.tune.driver` (a phase or a pipeline from start to end),
:mod:`~algospace.tune.trainables`, :mod:`~algospace.tune.cluster`,
:mod:`~algospace.tune.storage`, :mod:`~algospace.tune.progress`,
:mod:`~algospace.tune.wandb_logging`, and :mod:`~algospace.ray_compat`, the one home
of what this project needs from Ray's internals.

Importing the package imports no Ray.
"""
