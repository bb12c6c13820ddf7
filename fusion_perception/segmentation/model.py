"""DeepLabV3+ (segmentation-models-pytorch) wrapped as an mmengine model, and encoder freezing.

Weights are never downloaded: the smp model is always built with ``encoder_weights=None`` and
pretrained encoder weights, if wanted, come from a local file the user names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # smp/timm must never reach the Hugging Face hub

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.model import BaseModel, is_model_wrapper  # noqa: E402
from mmengine.registry import HOOKS, MODELS  # noqa: E402

from fusion_perception.config_files import config_keys  # noqa: E402
from fusion_perception.errors import ConfigError, DatasetError, check_input_file, clean_message  # noqa: E402

__all__ = ["SegSmpModel", "SegFreezeEncoderHook", "SegEpochSeedHook", "load_encoder_weights", "unwrap"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Every smp encoder of depth <= 5 reduces by at most 32: inputs are padded to a multiple of it.
_SIZE_DIVISOR = 32


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or other mmengine) wrapper."""
    return model.module if is_model_wrapper(model) else model


def load_encoder_weights(encoder: torch.nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a local state-dict file into an smp encoder (``weights_only`` loading, no network).

    Accepts a plain state dict or one nested under ``state_dict``/``model``; strips ``module.``,
    ``encoder.`` and ``backbone.`` prefixes; ignores classifier keys (``fc.*``, ``classifier.*``)
    that encoders do not have. Raises :class:`DatasetError` naming the file when it is missing or
    does not load safely, :class:`ConfigError` when it does not cover the encoder's parameters.
    """
    path = check_input_file(path, "encoder weights file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a corrupt file or a pickle with arbitrary objects
        raise DatasetError(path, f"cannot be loaded as a state dict ({type(e).__name__}: {clean_message(e)})") from None
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ConfigError(f"{path}: expected a state dict, found {type(sd).__name__}")
    clean: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        for prefix in ("module.", "encoder.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        clean[k] = v
    own = encoder.state_dict()
    unexpected = [k for k in clean if k not in own]
    clean = {k: v for k, v in clean.items() if k in own}
    missing = [k for k in own if k not in clean and not k.endswith("num_batches_tracked")]
    if missing:
        raise ConfigError(
            f"{path}: does not fit the encoder ({len(missing)} of {len(own)} tensors missing, "
            f"e.g. {missing[:4]}); is it the right architecture?"
        )
    shapes = [k for k, v in clean.items() if tuple(v.shape) != tuple(own[k].shape)]
    if shapes:
        raise ConfigError(f"{path}: tensor shapes differ from the encoder's, e.g. {shapes[:4]}")
    encoder.load_state_dict(clean, strict=False)
    return {"unexpected": unexpected, "missing": missing}


@dataclass(frozen=True)
class CrossEntropySettings:
    """The segmenter's loss settings, the model config's keys ``ignore_index`` and ``class_weight``."""

    ignore_index: int = 255  # the target value excluded from the loss (padding)
    # per-class weights (None: plain CE, the paper's); the segmentation task turns "auto" into
    # square-root median-frequency weights of the training labels before the model is built
    class_weight: Sequence[float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ignore_index", int(self.ignore_index))


@MODELS.register_module()
class SegSmpModel(BaseModel):
    """An smp segmentation model (DeepLabV3+ by default) with cross-entropy loss.

    Args:
        arch: smp architecture class name, e.g. ``"DeepLabV3Plus"``.
        encoder_name: smp encoder, e.g. ``"resnet50"``, ``"resnet18"``, ``"mobilenet_v2"``.
        num_classes: output classes (9 for MSRS).
        encoder_weights: local file with pretrained encoder weights, or ``None`` (random init).
        test_scale: predict on the image resized by this factor and upsample the logits back to
            the label's size (the score is always computed at full label resolution).
        arch_kwargs: extra keyword arguments for the smp class (``decoder_channels`` ...).
        ignore_index, class_weight: the cross-entropy's (:class:`CrossEntropySettings`).

    Inputs are uint8 ``(B, 3, H, W)`` batches; normalisation (ImageNet mean/std) happens here,
    on the model's device.
    """

    def __init__(
        self,
        arch: str = "DeepLabV3Plus",
        encoder_name: str = "resnet50",
        num_classes: int = 9,
        encoder_weights: str | None = None,
        test_scale: float = 1.0,
        arch_kwargs: dict[str, Any] | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
        **loss: Any,
    ):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        import segmentation_models_pytorch as smp

        ce = config_keys(CrossEntropySettings, loss, "SegSmpModel")  # the config's model.ignore_index and model.class_weight
        cls = getattr(smp, arch, None)
        if cls is None:
            raise ConfigError(f"unknown smp architecture {arch!r}")
        try:
            # encoder_weights=None: smp builds the encoder from scratch and touches no network.
            self.net = cls(encoder_name=encoder_name, encoder_weights=None, in_channels=3,
                           classes=num_classes, **(arch_kwargs or {}))
        except KeyError as e:
            raise ConfigError(f"unknown smp encoder {encoder_name!r}: {e}") from e
        self.encoder_pretrained = bool(encoder_weights)
        if encoder_weights:
            load_encoder_weights(self.net.encoder, encoder_weights)
        self.num_classes = int(num_classes)
        self.ignore_index = ce.ignore_index
        self.test_scale = float(test_scale)
        class_weight = ce.class_weight
        if class_weight is not None and len(class_weight) != num_classes:
            raise ConfigError(f"class_weight has {len(class_weight)} entries for {num_classes} classes")
        self.register_buffer("class_weight", None if class_weight is None else
                             torch.tensor([float(w) for w in class_weight]), persistent=False)
        self.encoder_frozen = False
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    # ------------------------------------------------------------------ freezing
    def freeze_encoder(self, frozen: bool) -> None:
        """Frozen: encoder parameters get no gradient (SGD skips them, weight decay included) and
        its BatchNorm layers stay in eval mode so running statistics do not move either."""
        self.encoder_frozen = bool(frozen)
        for p in self.net.encoder.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            self.net.encoder.eval()
        elif self.training:
            self.net.encoder.train()

    def train(self, mode: bool = True) -> "SegSmpModel":
        super().train(mode)
        if mode and self.encoder_frozen:  # the train loop calls model.train() every epoch
            self.net.encoder.eval()
        return self

    # ------------------------------------------------------------------ forward
    def logits(self, inputs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Class logits ``(B, C, H, W)`` at the input's size for uint8/float 0..255 ``inputs``."""
        x = (inputs.float() - self.mean) / self.std
        h, w = x.shape[-2:]
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        sh, sw = x.shape[-2:]
        ph, pw = (-sh) % _SIZE_DIVISOR, (-sw) % _SIZE_DIVISOR
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))  # zero = the mean colour after normalisation
        out = self.net(x)[..., :sh, :sw]
        if (sh, sw) != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out

    def forward(self, inputs: torch.Tensor, data_samples: dict | None = None, mode: str = "tensor"):
        if mode == "loss":
            logits = self.logits(inputs)
            target = data_samples["masks"].long()
            if not bool((target != self.ignore_index).any()):
                # an all-padding batch: cross_entropy would be NaN; a zero loss keeps the graph
                return {"loss": logits.sum() * 0.0}
            return {"loss": F.cross_entropy(logits.float(), target, weight=self.class_weight,
                                            ignore_index=self.ignore_index)}
        if mode == "predict":
            pred = self.logits(inputs, self.test_scale).argmax(1)
            out = []
            for i, (h, w) in enumerate(data_samples["sizes"]):
                item = {"pred": pred[i, :h, :w], "name": data_samples["names"][i],
                        "img_path": data_samples["img_paths"][i]}
                if "masks" in data_samples:
                    item["gt"] = data_samples["masks"][i, :h, :w]
                out.append(item)
            return out
        if mode == "tensor":
            return self.logits(inputs)
        raise ValueError(f"unknown mode {mode!r}")


@HOOKS.register_module()
class SegFreezeEncoderHook(Hook):
    """Keep the encoder frozen for the first ``frozen_epochs`` epochs, then train it (the paper's
    recipe: 100 of 340). Works after ``--resume``: the state follows the current epoch.

    Freezing presumes a pretrained encoder: a randomly initialised one (``encoder_weights=None``)
    would stay random for those epochs, so it is trained from the first epoch, and the log says so.
    """

    priority = "NORMAL"

    def __init__(self, frozen_epochs: int = 0):
        self.frozen_epochs = int(frozen_epochs)

    def before_train(self, runner) -> None:
        if self.frozen_epochs > 0 and not getattr(unwrap(runner.model), "encoder_pretrained", True):
            runner.logger.warning(
                f"the encoder is randomly initialised (no --encoder-weights): it is trained from the first "
                f"epoch instead of frozen for {self.frozen_epochs} (freezing presumes a pretrained encoder)")
            self.frozen_epochs = 0

    def before_train_epoch(self, runner) -> None:
        model = unwrap(runner.model)
        frozen = runner.epoch < self.frozen_epochs
        if frozen != model.encoder_frozen:
            runner.logger.info(f"epoch {runner.epoch + 1}: encoder {'frozen' if frozen else 'unfrozen'}")
        model.freeze_encoder(frozen)


@HOOKS.register_module()
class SegEpochSeedHook(Hook):
    """Reseed every random source from (seed, epoch, rank) at the start of each epoch and tell the
    dataset the epoch, so a resumed run repeats exactly what an uninterrupted run would have done
    (dropout, augmentation). Needs non-persistent workers to reach the dataset copies."""

    priority = "VERY_HIGH"

    def before_train_epoch(self, runner) -> None:
        import random

        import numpy as np

        from fusion_perception.segmentation.data import mix_seed

        seed = mix_seed(runner.seed or 0, runner.epoch, runner.rank)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        dataset = runner.train_dataloader.dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(runner.epoch)
