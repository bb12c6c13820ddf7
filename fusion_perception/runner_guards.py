"""What every run on mmengine's Runner is kept from doing silently (EMMA's two training steps, the
segmenter's training and its re-evaluation); importing this module registers the hook.

- :class:`CheckedRunner`: checkpoints (a resumed run's last one, ``load_from``, ``eval_seg
  --checkpoint``) are local files, loaded with ``weights_only=True`` within the one allow-list
  (:mod:`fusion_perception.checkpoints`), and must fit the model exactly. mmengine's own loading
  takes URLs, loads the tensors that fit, logs the rest and goes on: a checkpoint of another kind
  would leave the model as it was built, a tensor of another shape re-initialised;
- :func:`load_or_resume`: a run continues from its own latest checkpoint, and a new run starts from
  the ``load_from`` a user gave (``--cfg-options load_from=FILE``);
- :class:`FiniteLossHook`: a training stops with one line at the first loss that is NaN or infinite,
  instead of training on to a model of NaNs;
- :class:`RandomStateHook` (every CheckedRunner has it): a checkpoint carries the random generators'
  state and a resumed run continues from it, so an interrupted run ends as the uninterrupted one.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from fusion_perception.errors import DatasetError, TrainingDiverged, check_input_file, clean_message

__all__ = ["CheckedRunner", "FiniteLossHook", "RandomStateHook", "check_fits", "load_or_resume"]


class CheckedRunner(Runner):
    """mmengine's Runner whose checkpoints load safely and strictly, or fail in one line naming the file,
    and carry the random state that a resumed run continues from."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.register_hook(RandomStateHook())

    def load_checkpoint(self, filename: str, map_location: Any = "cpu", strict: bool = False,
                        revise_keys: list = [(r"^module\.", "")]) -> dict:  # noqa: B006 - mmengine's signature
        from mmengine.runner.checkpoint import _load_checkpoint_to_model

        from fusion_perception.checkpoints import allow_mmengine_checkpoints

        path = check_input_file(filename, "checkpoint")  # a local file: nothing is downloaded
        try:
            with allow_mmengine_checkpoints():
                checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # noqa: BLE001 - a cut file, a pickle of other objects: not a checkpoint
            raise DatasetError(path, f"not a checkpoint that loads with weights_only=True ({type(e).__name__}: "
                                     f"{clean_message(e)})") from None
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        check_fits(path, model, checkpoint, revise_keys)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict=True, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {path}")
        return checkpoint


def check_fits(path: Path, model: torch.nn.Module, checkpoint: Any, revise_keys: list = ()) -> None:
    """A DatasetError naming ``path`` unless ``checkpoint`` holds exactly ``model``'s tensors, each of
    its shape (BatchNorm's ``num_batches_tracked`` may be absent, as torch allows)."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise DatasetError(path, f"holds no state dict (a {type(checkpoint).__name__})")
    held = {}
    for key, value in state.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        held[key] = value
    own = model.state_dict()
    needed = [k for k in own if not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in held]
    extra = [k for k in held if k not in own]
    what = f"a {type(model).__name__}"
    if len(missing) == len(needed):
        raise DatasetError(path, f"holds none of the tensors of {what} (a checkpoint of another kind of model?)")
    if missing or extra:
        shown = ", ".join((missing or extra)[:3])
        raise DatasetError(path, f"does not fit {what}: {len(missing)} of its tensors missing, {len(extra)} "
                                 f"unknown to it (e.g. {shown}); a checkpoint of another model or config?")
    for key, tensor in own.items():
        if key in held and tuple(getattr(held[key], "shape", ())) != tuple(tensor.shape):
            raise DatasetError(path, f"tensor {key} is {tuple(held[key].shape)} in the file but "
                                     f"{tuple(tensor.shape)} in {what}: made with another config?")


def load_or_resume(cfg: Any, resume: bool) -> None:
    """Set ``cfg.resume`` and ``cfg.load_from`` (in place) for mmengine: the latest checkpoint in
    ``cfg.work_dir`` when the run continues and has one; otherwise a new run, from the config's
    ``load_from`` (a user's ``--cfg-options load_from=FILE``) when given, which must be a local file."""
    from mmengine.runner import find_latest_checkpoint

    load_from = cfg.get("load_from")
    if load_from:
        load_from = str(check_input_file(load_from, "load_from checkpoint").resolve())
    latest = find_latest_checkpoint(cfg.work_dir) if resume and Path(cfg.work_dir).is_dir() else None
    cfg.resume = latest is not None
    cfg.load_from = latest if latest is not None else load_from


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop the training at the first iteration whose loss is NaN or infinite, in one line naming the
    run's folder: what follows such a step is a model of NaNs, whatever the epochs left."""

    priority = "VERY_HIGH"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        for name, value in (outputs or {}).items():
            number = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else value
            if isinstance(number, float) and not math.isfinite(number):
                raise TrainingDiverged.at(runner.work_dir, name, number, runner.epoch + 1, runner.iter + 1,
                                          _learning_rate(runner))


def _learning_rate(runner: Any) -> float | None:
    try:
        rates = runner.optim_wrapper.get_lr()
        return float(next(iter(rates.values()))[0])
    except Exception:  # noqa: BLE001 - only for the message
        return None


RANDOM_STATE_KEY = "random_state"


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the state of torch's, numpy's and Python's generators in each checkpoint; restore it when a run
    resumes. mmengine saves only the seed, so a resumed run drew other random transforms than the run
    it continues (EMMA's equivariance shifts, rotations and flips) and ended as another model. A new
    run that only loads weights (``load_from``) keeps its own seed's stream."""

    priority = "VERY_LOW"  # after every other hook has saved its part

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint[RANDOM_STATE_KEY] = random_state()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        # mmengine's Runner keeps whether this load is a resume only in a private field
        if getattr(runner, "_resume", False) and RANDOM_STATE_KEY in checkpoint:
            set_random_state(checkpoint[RANDOM_STATE_KEY])


def random_state() -> dict[str, Any]:
    """The generators' state in types that ``torch.load(weights_only=True)`` reads back (tensors, ints,
    floats, tuples): numpy's Mersenne Twister key as a tensor."""
    _, key, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(), "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`random_state` saved (a checkpoint of a CPU run resumes on a GPU machine, and
    the other way round, with the CPU generators restored)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
