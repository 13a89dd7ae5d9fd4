"""MNIST-format datasets: the registry, the IDX format, sources and cache, loading with verification, splits."""

from fmnist.data.idx import FileDigest, read_idx, write_idx
from fmnist.data.load import Dataset, Split, data_digest, dataset_checksum, load_dataset, load_split, write_dataset
from fmnist.data.registry import DATASETS, DEFAULT_DATASET, FILES, SPLIT_FILES, DatasetSpec, get_spec

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "FILES",
    "SPLIT_FILES",
    "Dataset",
    "DatasetSpec",
    "FileDigest",
    "Split",
    "data_digest",
    "dataset_checksum",
    "get_spec",
    "load_dataset",
    "load_split",
    "read_idx",
    "write_dataset",
    "write_idx",
]
