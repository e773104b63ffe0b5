"""Several processes training one model (``torchrun --nproc_per_node N train.py ...``).

Without torchrun (a plain ``python train.py``) there is one process and every function
here is the identity or a no-op, so single-process runs are untouched.

This is the project's extension, not Dassl's: the trainers use it (and so run under
torchrun on upstream Dassl too). The engine's loop asks its trainer's ``processes``
for the few collectives it needs (rank 0 alone writes, the ranks agree on the random
state and on stopping, evaluation is gathered); ``PromptTuningTrainer`` sets
``processes`` to this module and cuts the data loaders into this rank's share
(``shard_loaders``).

With N processes (docs/PERFORMANCE.md, "Several GPUs"): each rank encodes its share
of every global batch of images and its share of the classes; both are gathered, so
that every rank computes the method's loss on the global batch, exactly as one process
would, and the learned parameters' gradients are averaged. Rank 0 alone writes files.
"""
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from datasets.errors import ConfigError

__all__ = [
    "init_distributed", "world_size", "rank", "is_main_process", "barrier", "split_sizes",
    "class_shard", "gather_rows", "all_gather_classes", "average_gradients", "broadcast_object",
    "all_gather_object", "any_process", "ShardedBatchSampler", "EvaluationShardSampler",
    "shard_loaders",
]


def init_distributed(use_cuda):
    """Join the process group that torchrun describes (``WORLD_SIZE`` > 1): nccl on CUDA,
    gloo on the CPU. Returns the world size (1 without torchrun)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or dist.is_initialized():
        return world_size()
    cuda = use_cuda and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    else:
        print(f"Note: {size} processes on the CPU: using the gloo backend (nccl needs CUDA)")
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return world_size()


def world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank():
    return dist.get_rank() if world_size() > 1 else 0


def is_main_process():
    return rank() == 0


def barrier():
    if world_size() > 1:
        dist.barrier()


def split_sizes(count, parts):
    """Sizes of ``count`` items split into ``parts`` contiguous pieces, the first ones one
    larger where it does not divide (``torch.tensor_split``'s rule)."""
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def class_shard(n_classes):
    """``(start, stop)``: the classes whose prompts this rank encodes."""
    sizes = split_sizes(n_classes, world_size())
    start = sum(sizes[:rank()])
    return start, start + sizes[rank()]


def _device_for_collectives(tensor):
    # gloo works on CPU tensors, nccl on CUDA tensors.
    if dist.get_backend() == "nccl":
        return tensor.cuda()
    return tensor.cpu()


def gather_rows(tensor):
    """This rank's rows followed by the others', in rank order, on every rank: each rank's
    share of a global batch becomes the global batch. Ranks may hold different numbers of
    rows. The gradient flows back: each rank receives the summed gradient of its own rows
    (every rank computes the loss of the global batch, so that is N times its rows' share,
    which ``average_gradients`` brings back to one process's)."""
    if world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    local = _device_for_collectives(tensor)
    counts = all_gather_object(local.shape[0])
    padding = max(counts) - local.shape[0]
    if padding:
        local = torch.cat([local, local.new_zeros(padding, *local.shape[1:])])
    pieces = all_gather(local.contiguous()) if tensor.requires_grad else _all_gather(local)
    return torch.cat([piece[:n] for piece, n in zip(pieces, counts)]).to(tensor.device)


def _all_gather(tensor):
    pieces = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(pieces, tensor.contiguous())
    return pieces


def all_gather_classes(features, n_classes):
    """Every class's features from each rank's ``class_shard``, with their gradient: the
    backward sends each rank the summed gradient of its own classes."""
    if world_size() == 1:
        return features
    from torch.distributed.nn.functional import all_gather

    sizes = split_sizes(n_classes, world_size())
    padding = max(sizes) - features.shape[0]
    if padding:
        features = torch.cat([features, features.new_zeros(padding, *features.shape[1:])])
    pieces = all_gather(features)
    return torch.cat([piece[:n] for piece, n in zip(pieces, sizes)])


def average_gradients(parameters):
    """Average the gradients of ``parameters`` over the ranks (one all-reduce). Every
    rank computes the loss of the global batch, so each holds its share of the classes'
    gradient times N; the average is one process's gradient."""
    if world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = _device_for_collectives(torch.cat([g.reshape(-1) for g in grads]))
    dist.all_reduce(flat)
    flat = flat.to(grads[0].device) / world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_object(obj):
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if world_size() == 1:
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def any_process(flag):
    """Whether ``flag`` holds on any rank (every rank gets the same answer)."""
    if world_size() == 1:
        return bool(flag)
    value = _device_for_collectives(torch.tensor([1 if flag else 0]))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())




class ShardedBatchSampler(Sampler):
    """This rank's share of each global batch of ``sampler``'s indices: the batches of one
    process with ``batch_size`` (same order, same last-batch rule), cut into contiguous
    shares in rank order; every rank draws the same order (their random states agree
    at each epoch's start)."""

    def __init__(self, sampler, batch_size, drop_last, rank, world_size):
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.rank, self.world_size = rank, world_size

    def share(self, batch):
        sizes = split_sizes(len(batch), self.world_size)
        start = sum(sizes[:self.rank])
        return batch[start:start + sizes[self.rank]]

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield self.share(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.share(batch)

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return -(-len(self.sampler) // self.batch_size)


class EvaluationShardSampler(Sampler):
    """Rank r's contiguous ``ceil(n / N)`` items of an evaluation set, padded with the
    last item, so that every rank runs as many batches; the shares gathered in rank
    order start with the whole set in its order (the engine's ``test`` drops the rest)."""

    def __init__(self, data_source, rank, world_size):
        self.count = len(data_source)
        self.per_rank = -(-self.count // world_size)
        self.start = rank * self.per_rank

    def __iter__(self):
        stop = min(self.start + self.per_rank, self.count)
        indices = list(range(self.start, stop))
        return iter(indices + [self.count - 1] * (self.per_rank - len(indices)))

    def __len__(self):
        return self.per_rank


def shard_loaders(trainer):
    """Replace the loaders that ``DataManager`` built for one process by this rank's
    share: of every global batch in training (the batches one process would draw), of
    the whole set in evaluation. Same datasets, transforms, workers."""
    if world_size() == 1:
        return
    for name in ("train_loader_x", "val_loader", "test_loader"):
        loader = getattr(trainer, name)
        if loader is not None:
            loader = _shard(loader, is_train=name == "train_loader_x")
            setattr(trainer, name, loader)
            setattr(trainer.dm, name, loader)


def _shard(loader, is_train):
    if not is_train:
        batching = {"batch_size": loader.batch_size,
                    "sampler": EvaluationShardSampler(loader.dataset, rank(), world_size())}
    else:
        images = min(loader.batch_size, len(loader.dataset))
        if images < world_size():
            raise ConfigError(
                f"{world_size()} processes share each training batch, but a batch holds "
                f"{images} images (DATALOADER.TRAIN_X.BATCH_SIZE, or the training set): use a "
                f"batch of at least {world_size()}, or fewer processes")
        batching = {"batch_sampler": ShardedBatchSampler(
            loader.sampler, loader.batch_size, loader.drop_last, rank(), world_size())}
    return DataLoader(loader.dataset, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, **batching)
