"""The fuse stage over several processes: the ranks of a torch.distributed job (torchrun).

``torchrun --nproc_per_node N tools/fuse_dataset.py ...`` (several nodes: ``--nnodes``,
``--node_rank`` and a rendezvous endpoint, with the data and the output folder on a filesystem
every node sees) starts N copies of the tool; :meth:`Ranks.join` tells each one its place.
The leader (rank 0) prepares the output folder and writes the one manifest; every rank fuses
its share of the pairs and writes its images itself, atomically, so a killed job resumes per
rank with the same command. The ranks exchange only small Python objects (which pairs are left,
what each rank did, errors), over gloo, whichever device fuses.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import torch

from fusion_perception.errors import ConfigError, FusionPerceptionError

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the fusing processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: Any = None  # the gloo process group the ranks talk over (None: the default group)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @classmethod
    def join(cls) -> "Ranks":
        """The torchrun job this process's environment describes (``RANK``, ``WORLD_SIZE``,
        ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); makes the process group if nobody has."""
        import torch.distributed as dist

        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise ConfigError("distributed fusion runs under torchrun (it sets RANK, WORLD_SIZE, ...): "
                              "torchrun --nproc_per_node N tools/fuse_dataset.py ...")
        group = None
        if not dist.is_initialized():
            dist.init_process_group("gloo")
            atexit.register(dist.destroy_process_group)
        elif dist.get_backend() != "gloo":  # e.g. NCCL, made by a trainer: object messages go over gloo
            group = dist.new_group(backend="gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), group)

    def device(self, device: torch.device) -> torch.device:
        """A bare ``cuda`` means this rank's own GPU, ``cuda:LOCAL_RANK``."""
        if self.world > 1 and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every ``world``-th from ``rank`` on (sizes interleave, so the shares balance)."""
        return list(items[self.rank::self.world])

    def from_leader(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the leader; its result, or the error it raised, on every rank."""
        if self.world == 1:
            return fn()
        import torch.distributed as dist

        box: list[Any] = [None]
        if self.leader:
            try:
                box[0] = ("ok", fn())
            except FusionPerceptionError as e:
                box[0] = ("error", e)
        dist.broadcast_object_list(box, src=0, group=self.group)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    def all_gather(self, value: T, error: FusionPerceptionError | None = None) -> list[T]:
        """Every rank's ``value``, in rank order, on every rank; if any rank passes an ``error``,
        every rank raises the first one."""
        if self.world == 1:
            if error is not None:
                raise error
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, (value, error), group=self.group)
        for _, e in gathered:
            if e is not None:
                raise e
        return [v for v, _ in gathered]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def describe(self) -> str:
        return f" [rank {self.rank} of {self.world}]" if self.world > 1 else ""


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that torchrun started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
