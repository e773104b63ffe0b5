import os.path as osp

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .benchmark import Benchmark, read_lines, split_camel_case, split_trainval


@DATASET_REGISTRY.register()
class UCF101(Benchmark):
    dataset_dir = "ucf101"
    image_folder = "UCF-101-midframes"
    section = "UCF101"

    def creation_files(self):
        return ["UCF-101-midframes", "ucfTrainTestlist/classInd.txt",
                "ucfTrainTestlist/trainlist01.txt", "ucfTrainTestlist/testlist01.txt"]

    def create_splits(self):
        cname2lab = {}
        for line in read_lines(osp.join(self.dataset_dir, "ucfTrainTestlist", "classInd.txt")):
            label, classname = line.strip().split(" ")
            cname2lab[classname] = int(label) - 1
        trainval = self.read_data(cname2lab, "trainlist01.txt")
        test = self.read_data(cname2lab, "testlist01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, cname2lab, text_file):
        items = []
        for line in read_lines(osp.join(self.dataset_dir, "ucfTrainTestlist", text_file)):
            action, filename = line.strip().split(" ")[0].split("/")
            renamed_action = split_camel_case(action)
            impath = osp.join(self.image_dir, renamed_action, filename.replace(".avi", ".jpg"))
            items.append(Datum(impath=impath, label=cname2lab[action], classname=renamed_action))
        return items
