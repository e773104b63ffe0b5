from dassl.utils import Registry, build_from_registry

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg, **kwargs):
    return build_from_registry(EVALUATOR_REGISTRY, cfg.TEST.EVALUATOR, "evaluator (TEST.EVALUATOR)",
                               cfg, verbose=cfg.VERBOSE, **kwargs)
