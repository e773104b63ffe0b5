"""README.md and docs/*.md: every relative link resolves; the README stays short."""
import glob
import os.path as osp
import re

from tests.helpers import REPO

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_in_the_docs_resolves():
    pages = [osp.join(REPO, "README.md"), osp.join(REPO, "DATASETS.md"),
             *glob.glob(osp.join(REPO, "docs", "*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"`[^`\n]*`", "", open(page).read())  # code spans are not links
        for target in LINK.findall(text):
            if not target.startswith(("http://", "https://", "mailto:")):
                if not osp.exists(osp.join(osp.dirname(page), target)):
                    broken.append(f"{osp.relpath(page, REPO)} -> {target}")
    assert len(pages) > 5 and broken == []


def test_readme_is_short():
    assert len(open(osp.join(REPO, "README.md")).read().splitlines()) <= 255


def test_docs_name_no_ticket_and_docs_and_tests_no_file_outside_the_repository():
    """Docs say what changed, not which ticket ("issue 16", "#16"; an upstream project's
    issue, "CoOp #29", is a citation); neither docs nor tests point at files outside
    the repository (a reader of a clone has only the clone)."""
    pages = [osp.join(REPO, "README.md"), osp.join(REPO, "DATASETS.md"),
             *glob.glob(osp.join(REPO, "docs", "*.md"))]
    ticket = re.compile(r"(?i)\bissues? #?\d+|(?<![A-Za-z] )(?<![\w&/])#\d+\b")
    work = "/" + "work/"  # spelt apart, so that this file does not match itself
    outside = re.compile(work + r"|/home/\w|/Users/\w")
    found = [f"{osp.relpath(page, REPO)}: {match.group(0)}" for page in pages
             for match in ticket.finditer(open(page).read())]
    for path in pages + glob.glob(osp.join(REPO, "tests", "*.py")):
        found += [f"{osp.relpath(path, REPO)}: {match.group(0)}"
                  for match in outside.finditer(open(path).read())]
    assert found == []
    assert ticket.search("since issue 16") and ticket.search("fixed in (#16)")
    assert not ticket.search("links dead, CoOp #61") and outside.search(f"see {work}shared/x.md")
