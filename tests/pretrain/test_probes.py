import numpy as np
import torch

from rckd.data.synthetic import SyntheticDataset
from rckd.pretrain.probes import HealthProbe, knn_accuracy, linear_probe_accuracy


def test_knn_and_linear_probe_on_known_features():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    centres = np.eye(3) * 5
    x = centres[y] + rng.normal(size=(60, 3)) * 0.5
    tr, te = np.arange(60) % 2 == 0, np.arange(60) % 2 == 1
    assert knn_accuracy(x[tr], y[tr], x[te], y[te], k=5) == 1.0
    assert linear_probe_accuracy(x[tr], y[tr], x[te], y[te]) == 1.0
    noise = rng.normal(size=(60, 3))
    assert knn_accuracy(noise[tr], y[tr], noise[te], y[te], k=5) < 0.7
    # ties go to the nearest neighbour: k=2 with one vote each
    assert knn_accuracy(np.array([[1.0, 0], [0, 1.0]]), np.array([0, 1]), np.array([[1.0, 0.1]]),
                        np.array([0]), k=2) == 1.0


def test_health_probe_reads_embeddings_of_a_task():
    class Embed(torch.nn.Module):
        def embed(self, images):  # mean colour: enough to separate some synthetic classes
            return images.float().mean(dim=(2, 3))

    probe = HealthProbe(SyntheticDataset(16, size=32, task="classification"), batch_size=8)
    task = Embed()
    task.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    res = probe(task, 1)
    assert set(res) == {"probe/knn", "probe/linear"}
    assert all(0.0 <= v <= 1.0 for v in res.values())
    assert task.training  # the probe restores the training mode
