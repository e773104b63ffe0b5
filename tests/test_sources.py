"""datasets/sources.py: every recorded checksum is the one its cited source publishes, and
the files without one are named."""
import inspect
import re

from torchvision.datasets import dtd, eurosat, flowers102, food101, imagenet, oxford_iiit_pet, sun397

from datasets.prepare import sources_table
from datasets.sources import SOURCES, UNVERIFIABLE


def recorded(filename):
    return {s.md5 for sources in SOURCES.values() for s in sources if s.filename == filename}.pop()


def test_md5s_cited_to_torchvision_equal_the_installed_torchvision():
    published = {url.rsplit("/", 1)[1]: md5 for url, md5 in oxford_iiit_pet.OxfordIIITPet._RESOURCES}
    published.update(dict(flowers102.Flowers102._file_dict.values()))
    published.update({name: md5 for name, md5 in imagenet.ARCHIVE_META.values()})
    published["food-101.tar.gz"] = food101.Food101._MD5
    published["SUN397.tar.gz"] = sun397.SUN397._DATASET_MD5
    published["dtd-r1.0.1.tar.gz"] = dtd.DTD._MD5
    published["EuroSAT.zip"] = re.search(r'md5="([0-9a-f]{32})"', inspect.getsource(eurosat)).group(1)
    cited = [s.filename for sources in SOURCES.values() for s in sources
             if s.filename in published and s.md5]
    assert len(cited) == 11
    for filename in cited:
        assert recorded(filename) == published[filename], filename


def test_files_without_a_checksum_are_exactly_those_named_unverifiable_in_the_docs():
    assert "fgvc-aircraft-2013b.tar.gz" in UNVERIFIABLE and "split_zhou_Caltech101.json" in UNVERIFIABLE
    assert "dtd-r1.0.1.tar.gz" not in UNVERIFIABLE
    files = {s.filename for sources in SOURCES.values() for s in sources}
    verified = files - set(UNVERIFIABLE)
    assert all(recorded(f) and re.fullmatch("[0-9a-f]{32}", recorded(f)) for f in verified)
    with open("docs/SECURITY.md") as f:
        security = f.read()
    section = security.split("cannot be verified", 1)[1].split("\n\n", 2)[1]
    assert sorted(re.findall(r"`([^`]+)`", section)) == UNVERIFIABLE
    table = sources_table()
    assert "c3e55429088dc681f30d81f4726b6595" in table and "none published" in table
