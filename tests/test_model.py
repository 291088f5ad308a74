import os
import pickle

import numpy as np
import pytest
import torch

from tsatlas.autoencoder import RNNAutoencoder
from tsatlas.nn import AEConfig, RecurrentAutoencoder


def _data(n=64, T=12, C=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    X = np.sin(t[None, :, None] / 2 + phase) * np.arange(1, C + 1)
    return (X + 0.05 * rng.standard_normal(X.shape)).astype(np.float32)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_shapes(cell, layers, bidirectional):
    net = RecurrentAutoencoder(AEConfig(n_channels=3, cell=cell, hidden=8, latent=5, layers=layers,
                                        bidirectional=bidirectional))
    recon, z = net(torch.zeros(4, 11, 3))
    assert recon.shape == (4, 11, 3) and z.shape == (4, 5)
    assert net.decoder(z, 20).shape == (4, 20, 3)


def test_a_few_epochs_lower_the_loss_and_runs_repeat():
    X = _data()
    kw = dict(hidden=16, latent=4, epochs=8, batch_size=16, patience=10, lr=1e-2)
    a = RNNAutoencoder(**kw).fit(X)
    losses = [h["train_loss"] for h in a.history_]
    assert losses[-1] < 0.7 * losses[0]
    b = RNNAutoencoder(**kw).fit(X)  # same seed, same numbers on the CPU
    assert [h["val_loss"] for h in a.history_] == [h["val_loss"] for h in b.history_]
    z, err = a.embed(X)
    assert z.shape == (64, 4) and err.shape == (64,)
    np.testing.assert_allclose(err, ((a.decode(z, 12) - X) ** 2).mean(axis=(1, 2)), rtol=1e-4, atol=1e-6)


def test_early_stopping_restores_best_weights():
    X = _data()
    ae = RNNAutoencoder(hidden=8, latent=2, epochs=50, batch_size=64, patience=2, lr=0.5).fit(X)
    assert len(ae.history_) < 50
    best = min(h["val_loss"] for h in ae.history_)
    va = ae.split(len(X))[1]
    assert ae.reconstruction_error(X[va]).mean() == pytest.approx(best, rel=1e-4)


def test_weights_round_trip_and_pickles_are_refused(tmp_path):
    X = _data(n=16)
    ae = RNNAutoencoder(hidden=8, latent=3, epochs=1).fit(X)
    again = RNNAutoencoder.from_bytes(ae.to_bytes())
    np.testing.assert_array_equal(again.transform(X), ae.transform(X))

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with pytest.raises(pickle.UnpicklingError):
        RNNAutoencoder.from_bytes(pickle.dumps({"params": Payload()}))
    assert not marker.exists()


def test_sklearn_contract():
    from sklearn.base import clone
    ae = RNNAutoencoder(hidden=8, latent=3, epochs=1)
    assert clone(ae).get_params() == ae.get_params()
    assert not hasattr(ae, "module_")
