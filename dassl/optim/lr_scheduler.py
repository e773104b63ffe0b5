"""Learning-rate schedulers with warm-up (upstream ``dassl.optim.lr_scheduler``).

Same schedule as upstream, step for step. Two fixes for current PyTorch:
- no ``verbose`` argument (torch >= 2.6 removed it from LRScheduler);
- ``state_dict`` nests the wrapped scheduler's state instead of pickling the
  scheduler object (and the optimizer inside it), so checkpoints load with
  ``torch.load(weights_only=True)``. Upstream checkpoints, which hold the object,
  still load.
"""
import torch
from torch.optim.lr_scheduler import LRScheduler

AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]


class _BaseWarmupScheduler(LRScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        raise NotImplementedError

    def step(self, epoch=None):
        # After the warm-up every step goes to the wrapped scheduler; this
        # scheduler's own last_epoch stays at warmup_epoch (upstream behaviour).
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        successor_state = state_dict.pop("successor")
        if not isinstance(successor_state, dict):  # an upstream checkpoint pickles the object
            successor_state = successor_state.state_dict()
        self.__dict__.update(state_dict)
        self.successor.load_state_dict(successor_state)


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    """Hold ``cons_lr`` for ``warmup_epoch`` epochs."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]


class LinearWarmupScheduler(_BaseWarmupScheduler):
    """Ramp from ``min_lr`` linearly to the base lr over ``warmup_epoch`` epochs."""

    def __init__(self, optimizer, successor, warmup_epoch, min_lr, last_epoch=-1):
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [lr * self.last_epoch / self.warmup_epoch for lr in self.base_lrs]


def build_lr_scheduler(optimizer, optim_cfg):
    """The scheduler of ``optim_cfg``; trainers step it once per epoch."""
    lr_scheduler = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    gamma = optim_cfg.GAMMA
    max_epoch = optim_cfg.MAX_EPOCH

    if lr_scheduler not in AVAI_SCHEDS:
        raise ValueError(
            f"OPTIM.LR_SCHEDULER must be one of {AVAI_SCHEDS}, but got [{lr_scheduler}]"
        )

    if lr_scheduler == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise TypeError(f"For single_step, OPTIM.STEPSIZE must be an integer, got {type(stepsize)}")
        if stepsize <= 0:
            stepsize = max_epoch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepsize, gamma=gamma)
    elif lr_scheduler == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(f"For multi_step, OPTIM.STEPSIZE must be a list, got {type(stepsize)}")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(stepsize),
                                                         gamma=gamma)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(max_epoch))

    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
        if optim_cfg.WARMUP_TYPE == "constant":
            scheduler = ConstantWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH,
                                                optim_cfg.WARMUP_CONS_LR)
        elif optim_cfg.WARMUP_TYPE == "linear":
            scheduler = LinearWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH,
                                              optim_cfg.WARMUP_MIN_LR)
        else:
            raise ValueError(
                f"OPTIM.WARMUP_TYPE must be 'constant' or 'linear', got [{optim_cfg.WARMUP_TYPE}]"
            )
    return scheduler
