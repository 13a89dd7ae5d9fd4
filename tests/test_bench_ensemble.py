"""benchmarks.ensemble scores every ensemble of k nets by their averaged probabilities."""

import torch

from benchmarks.ensemble import by_size, ensemble_accuracy


def test_averaged_probabilities_can_outvote_each_member():
    labels = torch.tensor([0, 1, 2])
    # Each net leans wrong on one image where the other is sure of the right class: alone 2/3, together 3/3.
    a = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.9, 0.1], [0.6, 0.0, 0.4]])
    b = torch.tensor([[0.6, 0.0, 0.4], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9]])
    assert ensemble_accuracy([a], labels) == ensemble_accuracy([b], labels) == 2 / 3
    assert ensemble_accuracy([a, b], labels) == 1.0


def test_by_size_scores_every_combination():
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (50,))
    nets = [torch.rand(50, 4).softmax(1) for _ in range(4)]
    sizes = by_size(nets, labels)
    assert [len(s) for s in sizes] == [4, 6, 4, 1]
    assert sizes[0] == [ensemble_accuracy([n], labels) for n in nets]
    assert sizes[3] == [ensemble_accuracy(nets, labels)]
