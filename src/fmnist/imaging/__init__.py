"""Image files to model input: decoding (decode), the dataset and photo preprocessing modes (modes, photo)."""

from fmnist.imaging.decode import (
    IMAGE_SUFFIXES,
    ImageSource,
    empty_folders,
    image_files,
    open_image,
    passed_over,
    readable_formats,
    required_image_files,
    to_grayscale,
)
from fmnist.imaging.encode import encode_image
from fmnist.imaging.modes import (
    MODES,
    PREPROCESSORS,
    SIZE,
    Preprocessed,
    check_mode,
    load_image,
    load_images,
    looks_like_dataset,
    prepare,
    prepare_file,
    preprocess,
    resize_dataset,
)
from fmnist.imaging.photo import PhotoSteps, photo_steps, photo_to_dataset

__all__ = [
    "IMAGE_SUFFIXES",
    "MODES",
    "PREPROCESSORS",
    "SIZE",
    "ImageSource",
    "PhotoSteps",
    "Preprocessed",
    "check_mode",
    "empty_folders",
    "passed_over",
    "encode_image",
    "image_files",
    "required_image_files",
    "load_image",
    "load_images",
    "looks_like_dataset",
    "open_image",
    "readable_formats",
    "photo_steps",
    "photo_to_dataset",
    "prepare",
    "prepare_file",
    "preprocess",
    "resize_dataset",
    "to_grayscale",
]
