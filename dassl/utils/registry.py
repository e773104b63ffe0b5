"""Name -> class registries filled by a decorator (``@REGISTRY.register()``)."""

__all__ = ["Registry", "build_from_registry"]


class Registry:
    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def _do_register(self, name, obj, force=False):
        if name in self._obj_map and not force:
            raise KeyError(
                f'An object named "{name}" was already registered in the '
                f'"{self._name}" registry'
            )
        self._obj_map[name] = obj

    def register(self, obj=None, force=False):
        if obj is None:
            # Used as a decorator: @REGISTRY.register()
            def wrapper(fn_or_class):
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name):
        if name not in self._obj_map:
            raise KeyError(
                f'Object name "{name}" does not exist in "{self._name}" registry'
            )
        return self._obj_map[name]

    def registered_names(self):
        return list(self._obj_map.keys())


def build_from_registry(registry, name, what, *args, verbose=True, **kwargs):
    """Instantiate ``registry``'s entry ``name``; an unknown name raises
    ValueError naming ``what`` (e.g. the config key) and the registered names."""
    from .tools import check_availability

    try:
        check_availability(name, registry.registered_names())
    except ValueError as e:
        raise ValueError(f"Unknown {what}: {e}") from None
    if verbose:
        print(f"Loading {what.split(' ')[0]}: {name}")
    return registry.get(name)(*args, **kwargs)
