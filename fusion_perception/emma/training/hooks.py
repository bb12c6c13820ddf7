"""A hook that keeps the per-epoch loss curve in ``work_dir/loss_history.json``.

mmengine's logger averages over a sliding window of iterations; the acceptance checks
(and users comparing ablations) want one number per term per epoch, plus the very first
iteration's values, and a curve that a resumed run continues rather than restarts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mmengine.dist import is_main_process
from mmengine.hooks import EMAHook, Hook
from mmengine.registry import HOOKS

from fusion_perception.files import atomic_write_text
from fusion_perception.runner_progress import ConsoleProgressHook  # noqa: F401  (registered for EMMA's runs)

if TYPE_CHECKING:
    from fusion_perception.metrics.retention_targets import TargetRule

HISTORY_FILE = "loss_history.json"


def read_loss_history(work_dir: str | Path) -> list[dict]:
    """The per-epoch records a run wrote: ``[{"epoch": 1, "loss": ..., "loss_ir": ..., "first": {...}}, ...]``."""
    path = Path(work_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    return json.loads(path.read_text())["epochs"]


@HOOKS.register_module()
class LossHistoryHook(Hook):
    """Per-epoch means of every logged loss term (and of the first iteration), written atomically."""

    priority = "LOW"

    def before_train(self, runner) -> None:
        # A resumed run keeps the epochs it has already done and drops any later record
        # (left by a run that went further before the checkpoint it resumes from).
        self._epochs = [r for r in read_loss_history(runner.work_dir) if r["epoch"] <= runner.epoch]

    def before_train_epoch(self, runner) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0
        self._first: dict[str, float] | None = None
        self._t0 = time.time()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs:
            return
        values = {k: float(v.detach()) if hasattr(v, "detach") else float(v)
                  for k, v in outputs.items() if k.startswith("loss")}
        if self._first is None:
            self._first = values
        for k, v in values.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1

    def after_train_epoch(self, runner) -> None:
        if self._count == 0:
            return
        record = {"epoch": runner.epoch + 1, "iters": self._count,
                  **{k: s / self._count for k, s in self._sums.items()},
                  "first": self._first, "seconds": round(time.time() - self._t0, 2)}
        self._epochs = [r for r in self._epochs if r["epoch"] < record["epoch"]] + [record]
        if is_main_process():
            atomic_write_text(Path(runner.work_dir) / HISTORY_FILE, json.dumps({"epochs": self._epochs}, indent=1))


BEST_FUSER = "emma_fuser_best.pth"
BEST_RECORD = "emma_fuser_best.json"


@HOOKS.register_module()
class CappedEMAHook(EMAHook):
    """mmengine's ``EMAHook`` whose ``begin_iter`` is capped at the run's length.

    The CPU recipe starts the average at step 300; a shorter run of the same config (``--epochs 1``,
    a small dataset, the tests) then averages from its last step instead of failing mmengine's check.
    """

    def before_train(self, runner) -> None:
        if not self.enabled_by_epoch and self.begin_iter > runner.max_iters:
            runner.logger.info(f"EMA: the run has {runner.max_iters} steps, fewer than begin_iter "
                               f"{self.begin_iter}; averaging from step {runner.max_iters}")
            self.begin_iter = runner.max_iters
        super().before_train(runner)


def selection_probe(scenes: Path, seed: int, count: int, size: tuple[int, int]):
    """The held-out scenes a run's fusers are scored on (made once in ``scenes``), as a
    :class:`~fusion_perception.metrics.retention.RetentionProbe` of the objects their tags say one
    modality shows: the same rule and the same objects the evaluation's ``tags`` rule scores."""
    from fusion_perception.data.readers import load_dataset
    from fusion_perception.metrics.retention import RetentionProbe
    from fusion_perception.metrics.retention_targets import TargetRule, dataset_target_records, target_pairs
    from fusion_perception.synthetic.dataset import generate

    if not (scenes / "m3fd" / "synthetic.json").is_file():
        generate(scenes, task="det", count=count, size=size, seed=seed, progress=False)
    records, rule = dataset_target_records(load_dataset(scenes / "m3fd")), TargetRule(mode="tags")
    return RetentionProbe(target_pairs(records, rule), rule)


def deployed_model(runner):
    """The model a run delivers, unwrapped: the moving average of the weights when the config has
    mmengine's ``EMAHook`` (as mmengine's checkpoints do: their ``state_dict`` holds the average),
    else the trained model itself."""
    from mmengine.model import is_model_wrapper

    ema = next((h for h in runner.hooks if isinstance(h, EMAHook)), None)
    model = ema.ema_model.module if ema is not None else runner.model
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class RetentionSelectionHook(Hook):
    """Model selection by what fusion is for: every ``interval`` iterations (and at the end), fuse
    held-out pairs and keep the U-Fuser whose worse of IR-only / VI-only target retention is highest,
    as ``work_dir/emma_fuser_best.pth`` (official format) with its scores in ``emma_fuser_best.json``.

    The held-out pairs (``data``): ``"synthetic"``, ``count`` synthetic scenes of a seed the training
    never sees, their objects judged by the generator's tags; ``"training"``, the ``split`` part
    (default ``val``) of the dataset the run trains on (its ``data_root`` and layout spec, e.g.
    ``msrs_det:split_lists=DIR``: the patches come from its train part only); or a dataset root read
    with ``layout``. On real data the objects are judged by the ``auto`` rule: the labels drawn per
    modality where the dataset has them (``msrs_det``), else their contrast in the two sources
    (:class:`~fusion_perception.metrics.retention_targets.TargetRule`).

    EMMA's loss reaches the fuser only through the sensing nets, and on a short CPU schedule the
    balance between the IR and the visible term swings from one evaluation to the next (measured:
    IR-only retention 0.16, 0.61, 0.77 after 150, 300, 450 steps of one run); selecting on held-out
    retention keeps the best fuser of the run instead of whichever the last step left. With
    mmengine's ``EMAHook`` in the config, the moving average of the weights is what is scored and kept.
    Scoring starts at iteration ``begin`` (after a warm start, whose fuser imitates a classical
    method and is not EMMA yet); the run's last iteration is always scored.
    """

    priority = "LOW"

    def __init__(self, interval: int = 100, seed: int = 1, count: int = 40, size: tuple[int, int] = (320, 256),
                 begin: int = 0, data: str = "synthetic", layout: str = "auto", split: str = "val"):
        self.interval, self.begin = int(interval), int(begin)
        self.seed, self.count, self.size = int(seed), int(count), tuple(size)
        self.data, self.layout, self.split = str(data), str(layout), str(split)
        self._probe = None

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        if self.data == "synthetic":
            scenes = Path(runner.work_dir) / "selection_scenes"
            self._probe = selection_probe(scenes, self.seed, self.count, self.size)
            self._held_out = {"seed": self.seed, "count": self.count}
        else:
            from fusion_perception.metrics.retention import RetentionProbe
            from fusion_perception.metrics.retention_targets import target_pairs

            records, rule, self._held_out = self._held_out_records(runner)
            self._probe = RetentionProbe(target_pairs(records, rule), rule)
        path = Path(runner.work_dir) / BEST_RECORD
        self._best = json.loads(path.read_text()) if path.is_file() else None  # a resumed run keeps its best

    def _held_out_records(self, runner) -> tuple[list[dict], "TargetRule", dict]:
        """The held-out pairs of a real dataset (target records), the rule that judges their objects,
        and what they are."""
        from fusion_perception.data.readers import load_dataset
        from fusion_perception.errors import ConfigError, DatasetError
        from fusion_perception.metrics.retention_targets import TargetRule, dataset_target_records

        root, layout = self.data, self.layout
        if self.data == "training":
            dataset = runner.cfg.train_dataloader.dataset
            root, layout = dataset.get("data_root"), dataset.get("layout", "auto")
            if root is None:
                raise ConfigError("RetentionSelectionHook(data='training') selects on the training dataset's "
                                  f"{self.split} part: give the dataset (--data)")
        ds = load_dataset(root, layout)
        records = [r for r in dataset_target_records(ds) if r["split"] == self.split]
        if not records:
            raise DatasetError(ds.root, f"no pairs in its {self.split} part to select the fuser on (layout {layout}; "
                                        "a split is given with --split-lists)")
        rule = TargetRule()
        return records, rule, {"data": str(ds.root), "layout": layout, "split": self.split, "targets": rule.mode,
                               "pairs": len(records)}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        it = runner.iter + 1
        if self._probe is not None and (it == runner.max_iters or (it % self.interval == 0 and it > self.begin)):
            self._select(runner)

    def _select(self, runner) -> None:
        import torch

        from fusion_perception.emma.fuser import fuse_one_pass
        from fusion_perception.emma.checkpoint import save_official_state_dict

        fuser = deployed_model(runner).fuser
        was_training = fuser.training
        fuser.eval()
        with torch.no_grad():
            device = next(fuser.parameters()).device
            scores = self._probe.score(lambda ir, vi: fuse_one_pass(fuser, ir.to(device), vi.to(device)))
        fuser.train(was_training)
        it = runner.iter + 1
        runner.logger.info(f"held-out retention at iteration {it}: IR-only {scores['ir_only']:.3f}, "
                           f"VI-only {scores['vi_only']:.3f}")
        if self._best is None or scores["min"] > self._best["min"]:
            self._best = {"iteration": it, **scores, "scenes": self._held_out}
            save_official_state_dict(fuser, Path(runner.work_dir) / BEST_FUSER)
            atomic_write_text(Path(runner.work_dir) / BEST_RECORD, json.dumps(self._best, indent=1))
