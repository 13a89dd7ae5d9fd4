"""MNIST-format datasets: the registry, the IDX format, and loading with verification and caching."""

from fmnist.data.idx import FileDigest, read_idx, write_idx
from fmnist.data.registry import DATASETS, DEFAULT_DATASET, FILES, SPLIT_FILES, DatasetSpec, get_spec
from fmnist.data.store import Dataset, Split, cache_root, load_dataset, load_split, write_dataset

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "FILES",
    "SPLIT_FILES",
    "Dataset",
    "DatasetSpec",
    "FileDigest",
    "Split",
    "cache_root",
    "get_spec",
    "load_dataset",
    "load_split",
    "read_idx",
    "write_dataset",
    "write_idx",
]
