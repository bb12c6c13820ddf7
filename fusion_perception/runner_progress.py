"""The terminal's view of a training on mmengine's Runner (EMMA's two steps, the segmenter): one
progress bar over the iterations, with the running loss. The Runner's logger lines go to the run's
log file (:mod:`fusion_perception.console`); importing this module registers the hook.
"""

from __future__ import annotations

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ConsoleProgressHook(Hook):
    """One progress bar over the training iterations on the terminal (the logger's lines go to the
    run's log file, see :mod:`fusion_perception.console`), with the running loss."""

    priority = "VERY_LOW"

    def __init__(self, desc: str = "train", disable: bool = False):
        self.desc = desc
        self.disable = disable
        self._bar = None

    def before_train(self, runner) -> None:
        from fusion_perception.console import progress

        left = max(0, runner.max_iters - runner.iter)
        self._bar = progress(total=left, desc=self.desc, unit="it", disable=self.disable or not is_main_process())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        loss = (outputs or {}).get("loss")
        if loss is not None and self._bar.n % 10 == 0:
            value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
            self._bar.set_postfix_str(f"epoch {runner.epoch + 1}/{runner.max_epochs} loss {value:.4f}", refresh=False)

    def after_train(self, runner) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
