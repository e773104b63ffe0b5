"""Every import points down: clip/ and dassl/ at the ground import nothing of the
project; datasets/, trainers/ and runs/ import only their own layer and those below
(so no loop among them); none of them imports a program (train.py, parse_test_res.py,
tools/, benchmarks/). Read from every module's imports, those inside functions too."""
import ast
import glob
import os.path as osp

from tests.helpers import REPO

# Each library package, with the project's top-level names it may import.
LAYERS = ["clip", "dassl", "datasets", "trainers", "runs"]
MAY_IMPORT = {"clip": {"clip"}, "dassl": {"dassl"},
              "datasets": {"clip", "dassl", "datasets"},
              "trainers": {"clip", "dassl", "datasets", "trainers"},
              "runs": {"clip", "dassl", "datasets", "trainers", "runs"}}
PROGRAMS = {"train", "parse_test_res", "tools", "benchmarks"}
PROJECT = set(LAYERS) | PROGRAMS | {"tests"}


def imported_names(path, package):
    """(line, top-level name) of every import in the file; relative ones are ``package``."""
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, package if node.level else node.module.split(".")[0]


def layer_violations(repo):
    found = []
    for package in LAYERS:
        for path in sorted(glob.glob(osp.join(repo, package, "**", "*.py"), recursive=True)):
            for line, name in imported_names(path, package):
                if name in PROJECT and name not in MAY_IMPORT[package]:
                    kind = "a program" if name in PROGRAMS else "a layer above or beside it"
                    found.append(f"{osp.relpath(path, repo)}:{line} imports {name} ({kind})")
    return found


def test_every_import_points_down():
    assert sum(len(glob.glob(osp.join(REPO, p, "**", "*.py"), recursive=True))
               for p in LAYERS) > 60
    assert layer_violations(REPO) == []


def test_a_violation_is_named_with_its_file_and_line(tmp_path):
    for package in LAYERS:
        (tmp_path / package).mkdir()
    (tmp_path / "dassl" / "engine.py").write_text("import os\n\nfrom runs.errors import X\n")
    (tmp_path / "trainers" / "grid.py").write_text("def f():\n    import train\n")
    (tmp_path / "datasets" / "ok.py").write_text("from . import x\nfrom dassl.utils import y\n")
    assert layer_violations(str(tmp_path)) == [
        "dassl/engine.py:3 imports runs (a layer above or beside it)",
        "trainers/grid.py:2 imports train (a program)"]


def test_programs_are_run_as_modules_without_editing_sys_path():
    """Tools and benchmarks run as ``python -m tools.NAME`` from the repository root, so
    none of them puts a folder on ``sys.path`` itself."""
    edits = []
    for folder in ("tools", "benchmarks"):
        assert osp.isfile(osp.join(REPO, folder, "__init__.py"))
        for path in sorted(glob.glob(osp.join(REPO, folder, "*.py"))):
            for node in ast.walk(ast.parse(open(path).read(), path)):
                if (isinstance(node, ast.Attribute) and node.attr == "path"
                        and isinstance(node.value, ast.Name) and node.value.id == "sys"):
                    edits.append(f"{osp.relpath(path, REPO)}:{node.lineno}")
    assert edits == []
