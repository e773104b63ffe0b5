"""Optimizers by name (upstream ``dassl.optim.optimizer``)."""
import warnings

import torch
import torch.nn as nn

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]


def build_optimizer(model, optim_cfg, param_groups=None):
    """A torch optimizer over ``model``'s parameters (an nn.Module or an iterable of
    parameters), or over ``param_groups`` when given."""
    optim = optim_cfg.NAME
    lr = optim_cfg.LR
    weight_decay = optim_cfg.WEIGHT_DECAY
    momentum = optim_cfg.MOMENTUM
    staged_lr = optim_cfg.STAGED_LR

    if optim not in AVAI_OPTIMS:
        raise ValueError(f"OPTIM.NAME must be one of {AVAI_OPTIMS}, but got [{optim}]")

    if param_groups is not None and staged_lr:
        warnings.warn("staged_lr will be ignored, if you need to use staged_lr, "
                      "please bind it with param_groups yourself.")

    if param_groups is None:
        if staged_lr:
            if not isinstance(model, nn.Module):
                raise TypeError("When staged_lr is True, model given to build_optimizer() "
                                "must be an instance of nn.Module")
            if isinstance(model, nn.DataParallel):
                model = model.module
            new_layers = optim_cfg.NEW_LAYERS
            if isinstance(new_layers, str):
                new_layers = [new_layers]
            base_params, new_params = [], []
            for name, module in model.named_children():
                if name in new_layers:
                    new_params += list(module.parameters())
                else:
                    base_params += list(module.parameters())
            param_groups = [
                {"params": base_params, "lr": lr * optim_cfg.BASE_LR_MULT},
                {"params": new_params},
            ]
        elif isinstance(model, nn.Module):
            param_groups = model.parameters()
        else:
            param_groups = model

    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)
    if optim == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    if optim == "amsgrad":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas,
                                amsgrad=True)
    if optim == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               dampening=optim_cfg.SGD_DAMPNING, nesterov=optim_cfg.SGD_NESTEROV)
    if optim == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, momentum=momentum,
                                   weight_decay=weight_decay, alpha=optim_cfg.RMSPROP_ALPHA)
    if optim == "radam":
        return torch.optim.RAdam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
