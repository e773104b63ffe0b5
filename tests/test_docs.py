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
