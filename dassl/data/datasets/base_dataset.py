"""``Datum`` (one image) and ``DatasetBase`` (the lists a loader hands over).

``Datum`` must live in this module under this name: few-shot caches are pickles
of Datum lists, and pickles record the defining module, so caches written here
load with upstream Dassl and the other way round.
"""
import random
from collections import defaultdict

from dassl.utils import check_isfile


class Datum:
    """One item: image path, 0-based label, domain, raw class name.

    The instance dictionary holds exactly ``_impath``, ``_label``, ``_domain``
    and ``_classname`` (pickle compatibility with upstream).
    """

    def __init__(self, impath="", label=0, domain=0, classname=""):
        assert isinstance(impath, str), f"impath must be a string, got {type(impath).__name__}"
        assert check_isfile(impath), f"Image file not found: {impath}"
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label

    @property
    def domain(self):
        return self._domain

    @property
    def classname(self):
        return self._classname

    def __repr__(self):
        return f"Datum(impath={self._impath!r}, label={self._label}, classname={self._classname!r})"


class DatasetBase:
    """Holds train_x / train_u / val / test lists of Datum.

    ``num_classes``, ``lab2cname`` and ``classnames`` come from ``train_x`` as
    given (after few-shot and base/new subsampling).
    """

    dataset_dir = ""  # the folder name under DATASET.ROOT
    domains = []

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self):
        return self._lab2cname

    @property
    def classnames(self):
        return self._classnames

    @property
    def num_classes(self):
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source):
        # The largest label plus one, not the number of distinct labels.
        if not data_source:
            raise ValueError("The training list (train_x) is empty: no classes to learn")
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source):
        mapping = {item.label: item.classname for item in data_source}
        labels = sorted(mapping.keys())
        return mapping, [mapping[label] for label in labels]

    def check_input_domains(self, source_domains, target_domains):
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains):
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(
                    f"Input domain must belong to {self.domains}, but got [{domain}]"
                )

    def generate_fewshot_dataset(self, *data_sources, num_shots=-1, repeat=False):
        """Pick ``num_shots`` items per label from each source.

        Labels in order of first appearance; ``random.sample`` of Python's
        global generator per label when it has enough items (also when it has
        exactly ``num_shots``), else every item in order (or ``random.choices``
        with ``repeat``). This order of draws reproduces CoOp's published subsets.
        """
        if num_shots < 1:
            if len(data_sources) == 1:
                return data_sources[0]
            return data_sources

        print(f"Creating a {num_shots}-shot dataset")
        output = []
        for data_source in data_sources:
            tracker = self.split_dataset_by_label(data_source)
            dataset = []
            for label, items in tracker.items():
                if len(items) >= num_shots:
                    sampled_items = random.sample(items, num_shots)
                elif repeat:
                    sampled_items = random.choices(items, k=num_shots)
                else:
                    sampled_items = items
                if len(items) < num_shots:
                    self._warn_few_images(items[0].classname, len(items), num_shots, repeat)
                dataset.extend(sampled_items)
            output.append(dataset)

        if len(output) == 1:
            return output[0]
        return output

    def _warn_few_images(self, classname, count, num_shots, repeat):
        """Once per class: upstream silently takes fewer (or repeated) images."""
        warned = self.__dict__.setdefault("_few_image_classes", set())
        if classname in warned:
            return
        warned.add(classname)
        used = f"{num_shots} drawn with repetition" if repeat else f"all {count}"
        print(f"Warning: class {classname!r} has {count} images, fewer than the {num_shots} "
              f"shots requested; using {used}")

    def split_dataset_by_label(self, data_source):
        """Label -> items, labels in order of first appearance."""
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    def split_dataset_by_domain(self, data_source):
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output
