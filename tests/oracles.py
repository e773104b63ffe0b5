"""Independent reference implementations, loaded under names that cannot clash with ours."""
import glob
import importlib.util
import os.path as osp
import sys
import types

from tests.helpers import REPO


def openai_clip():
    """OpenAI's CLIP code (the clip-anytorch 2.6.0 wheel), imported as ``openai_clip``.

    Its top-level package is also called ``clip``, so it is unpacked from the
    wheel that scripts/test.sh downloads into .oracles/ and loaded from there.
    """
    if "openai_clip" in sys.modules:
        return sys.modules["openai_clip"]
    wheels = glob.glob(osp.join(REPO, ".oracles", "clip_anytorch-2.6.0-*.whl"))
    if not wheels:
        raise RuntimeError("The clip-anytorch oracle wheel is missing: run bash scripts/test.sh, "
                           "which downloads it into .oracles/")
    target = osp.join(REPO, ".oracles", "clip_anytorch")
    if not osp.isdir(target):
        from datasets.archives import extract  # members checked to stay inside target

        extract(wheels[0], target, progress=False)
    if "pkg_resources" not in sys.modules:
        # Its clip.py imports `packaging` through pkg_resources, gone from current setuptools.
        import packaging.version

        shim = types.ModuleType("pkg_resources")
        shim.packaging = packaging
        sys.modules["pkg_resources"] = shim
    package_dir = osp.join(target, "clip")
    spec = importlib.util.spec_from_file_location(
        "openai_clip", osp.join(package_dir, "__init__.py"),
        submodule_search_locations=[package_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules["openai_clip"] = module
    spec.loader.exec_module(module)
    return module
