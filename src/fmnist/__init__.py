"""fmnist: convolutional image classifiers for Fashion-MNIST and other MNIST-format datasets."""

__version__ = "0.1.0"
