"""The classification evaluator: accuracy, error, macro F1, per-class accuracy.

The printed lines (``* accuracy: 69.3%``) are what results tools parse from
log.txt; their format is upstream's.
"""
import os.path as osp
from collections import OrderedDict, defaultdict

import numpy as np
import torch

from .build import EVALUATOR_REGISTRY


class EvaluatorBase:
    def __init__(self, cfg):
        self.cfg = cfg

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError


def macro_f1_score(y_true, y_pred):
    """Mean F1 over the labels present in ``y_true`` (scikit-learn's
    ``f1_score(average="macro", labels=np.unique(y_true))``, zero where undefined)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    scores = []
    for label in np.unique(y_true):
        tp = np.sum((y_pred == label) & (y_true == label))
        fp = np.sum((y_pred == label) & (y_true != label))
        fn = np.sum((y_pred != label) & (y_true == label))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom > 0 else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def confusion_matrix_normalized(y_true, y_pred):
    """Row-normalised confusion matrix over the labels seen in either list."""
    labels = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    index = {label: i for i, label in enumerate(labels)}
    cmat = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for t, p in zip(y_true, y_pred):
        cmat[index[t], index[p]] += 1
    rows = cmat.sum(axis=1, keepdims=True)
    return np.divide(cmat, rows, out=np.zeros_like(cmat), where=rows > 0)


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._correct = 0
        self._total = 0
        self._per_class_res = None
        self._y_true = []
        self._y_pred = []
        if cfg.TEST.PER_CLASS_RESULT:
            assert lab2cname is not None
            self._per_class_res = defaultdict(list)

    def reset(self):
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        if self._per_class_res is not None:
            self._per_class_res = defaultdict(list)

    def process(self, mo, gt):
        # mo (torch.Tensor): model output [batch, num_classes]
        # gt (torch.LongTensor): ground truth [batch]
        pred = mo.max(1)[1]
        matches = pred.eq(gt).float()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.data.cpu().numpy().tolist())
        self._y_pred.extend(pred.data.cpu().numpy().tolist())
        if self._per_class_res is not None:
            for i, label in enumerate(gt):
                self._per_class_res[label.item()].append(int(matches[i].item()))

    def evaluate(self):
        results = OrderedDict()
        acc = 100.0 * self._correct / self._total
        err = 100.0 - acc
        macro_f1 = 100.0 * macro_f1_score(self._y_true, self._y_pred)
        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1
        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {err:.1f}%\n"
            f"* macro_f1: {macro_f1:.1f}%"
        )

        if self._per_class_res is not None:
            labels = sorted(self._per_class_res.keys())
            print("=> per-class result")
            accs = []
            for label in labels:
                classname = self._lab2cname[label]
                res = self._per_class_res[label]
                correct, total = sum(res), len(res)
                acc = 100.0 * correct / total
                accs.append(acc)
                print(f"* class: {label} ({classname})\ttotal: {total:,}\t"
                      f"correct: {correct:,}\tacc: {acc:.1f}%")
            mean_acc = np.mean(accs)
            print(f"* average: {mean_acc:.1f}%")
            results["perclass_accuracy"] = mean_acc

        if self.cfg.TEST.COMPUTE_CMAT:
            cmat = confusion_matrix_normalized(self._y_true, self._y_pred)
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(cmat, save_path)
            print(f"Confusion matrix is saved to {save_path}")

        return results
