import numpy as np
import torch
import pytest

from tsatlas.generation import LatentMixtures, allocate, chain, sample_latent, series_table, to_original_units
from tsatlas.windowing import Windows
from tsatlas.gan import GANSchedule, sample_timegan, train_timegan
from tsatlas.metrics import (acf, autocorrelation_distance, discriminative_score, generation_scores, marginal_distance,
                             predictive_score, repeated)


@pytest.mark.parametrize("sizes,n", [([10, 30, 60], 100), ([1, 1, 1], 7), ([5, 0, 5], 3)])
def test_allocate_is_proportional_and_exact(sizes, n):
    counts = allocate(np.array(sizes), n)
    assert counts.sum() == n
    assert np.all(np.abs(counts - n * np.array(sizes) / sum(sizes)) < 1)


def test_latent_samples_stay_near_their_cluster():
    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(-5, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))])
    labels = np.repeat([0, 1], 50)
    z, cl = sample_latent(Z, labels, np.array([3, 7]), components=2, seed=0)
    assert np.bincount(cl).tolist() == [3, 7]
    assert np.all(np.sign(z[:, 0]) == np.where(cl == 0, -1, 1))


@pytest.fixture
def fitted(monkeypatch) -> list[int]:
    """The row count of every latent Gaussian mixture fitted while the test runs."""
    import tsatlas.generation as gen
    rows: list[int] = []
    real_fit = gen.GaussianMixture.fit
    monkeypatch.setattr(gen.GaussianMixture, "fit", lambda self, X, y=None: rows.append(len(X)) or real_fit(self, X))
    return rows


def test_a_big_cluster_fits_its_mixture_on_a_sample(monkeypatch, fitted):
    import tsatlas.generation as gen
    monkeypatch.setattr(gen, "GMM_FIT_AT_MOST", 100)
    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(-5, 0.1, (1000, 2)), rng.normal(5, 0.1, (60, 2))])
    labels = np.repeat([0, 1], [1000, 60])
    z, cl = sample_latent(Z, labels, np.array([4, 4]), components=2, seed=0)
    assert fitted == [100, 60]
    assert np.all(np.sign(z[:, 0]) == np.where(cl == 0, -1, 1))
    again, _ = sample_latent(Z, labels, np.array([4, 4]), components=2, seed=0)
    np.testing.assert_array_equal(again, z)  # the sample is seeded


def test_each_cluster_mixture_is_fitted_once_and_sampled_per_seed(fitted):
    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(-5, 0.1, (50, 2)), rng.normal(5, 0.1, (30, 2))])
    labels = np.repeat([0, 1], [50, 30])
    mix = LatentMixtures(Z, labels, components=2, seed=0)
    first, _ = mix.sample(np.array([4, 4]), seed=0)
    other, _ = mix.sample(np.array([4, 4]), seed=1)  # what the evaluation draws: the same mixtures, another seed
    again, _ = mix.sample(np.array([4, 4]), seed=0)
    assert fitted == [50, 30]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    np.testing.assert_array_equal(first, sample_latent(Z, labels, np.array([4, 4]), components=2, seed=0)[0])


def test_original_units_and_series_table():
    n, T, C = 6, 5, 2
    w = Windows(X=np.zeros((n, T, C), np.float32), loc=np.full((n, C), 100.0, np.float32),
                scale=np.full((n, C), 2.0, np.float32), series=np.zeros(n, int), start=np.zeros(n, int),
                series_ids=np.array(["a"]))
    labels = np.array([0, 0, 0, 1, 1, 1])
    Xs = np.ones((4, T, C), np.float32)
    X = to_original_units(Xs, np.array([0, 1, 1, 0]), w, labels, seed=0)
    np.testing.assert_allclose(X, 102.0)
    df = series_table(X, np.array([0, 1, 1, 0]), ["u", "v"])
    assert list(df.columns) == ["series_id", "timestamp", "u", "v", "cluster"] and len(df) == 4 * T
    assert df.groupby("series_id")["cluster"].nunique().eq(1).all()
    assert df["series_id"].iloc[0].startswith("syn-c0-")


def test_generation_metrics_known_answers():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (300, 20, 2)), rng.normal(0, 1, (300, 20, 2))
    assert marginal_distance(a, b) < 0.05
    assert marginal_distance(a, b + 3) == pytest.approx(3, abs=0.05)
    t = np.arange(20)
    smooth = np.sin(t / 3 + rng.uniform(0, 6, (300, 1)))[..., None]
    assert autocorrelation_distance(a[..., :1], b[..., :1]) < 0.05
    assert autocorrelation_distance(smooth, a[..., :1]) > 0.2
    s = generation_scores(a, b)
    assert s["marginal"] < 0.05 and s["marginal_real_floor"] < 0.05
    assert 0.9 < s["nearest_real_ratio"] < 1.1  # independent draws: as far from the real ones as real ones are


def test_nearest_real_ratio_sees_copies():
    from tsatlas.metrics import nearest_real_ratio

    rng = np.random.default_rng(2)
    real = rng.normal(0, 1, (400, 12, 2))
    ref, held = real[:200], real[200:]
    copies = ref + 0.05 * rng.normal(0, 1, ref.shape)  # real windows with a little noise
    assert nearest_real_ratio(ref, held, copies) < 0.2
    assert 0.85 < nearest_real_ratio(ref, held, rng.normal(0, 1, (200, 12, 2))) < 1.15
    assert np.isnan(nearest_real_ratio(ref[:0], held[:1], copies[:1]))  # one real window: nothing to compare


def test_acf_matches_the_lag_by_lag_definition():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 50, 3)).cumsum(axis=1)
    X[0, :, 1] = 2.5  # a constant window: left out of channel 1's mean
    Xc = X - X.mean(axis=1, keepdims=True)
    var = (Xc**2).sum(axis=1)
    ok = var > 1e-9
    want = np.stack([np.where(ok, (Xc[:, lag:] * Xc[:, :-lag]).sum(axis=1) / np.where(ok, var, 1), 0).sum(0) / ok.sum(0)
                     for lag in range(1, 50)])
    np.testing.assert_allclose(acf(X), want, atol=1e-10)
    np.testing.assert_allclose(acf(X, max_lag=5), want[:5], atol=1e-10)
    assert np.all(acf(np.full((4, 10, 1), 7.0)) == 0)


def _sines(n, C, seed, T=24):
    r = np.random.default_rng(seed)
    f, p = r.uniform(0.05, 0.3, (n, 1, C)), r.uniform(0, 3, (n, 1, C))
    return np.sin(f * np.arange(T)[None, :, None] + p).astype(np.float32)


def test_discriminative_score_known_answers():
    a, b = _sines(400, 2, 0), _sines(400, 2, 1)
    noise = np.random.default_rng(2).normal(0, 1, a.shape).astype(np.float32)
    same = repeated(discriminative_score, a, b, repeats=2, iterations=300)
    apart = repeated(discriminative_score, a, noise, repeats=2, iterations=300)
    assert same["mean"] < 0.1 and apart["mean"] > 0.4 and set(same) == {"mean", "std"}


def test_predictive_score_single_channel():
    a, b = _sines(300, 1, 0), _sines(300, 1, 1)
    good = predictive_score(a, b, iterations=300)
    bad = predictive_score(a, np.zeros_like(b) + 3, iterations=300)
    assert np.isfinite(good) and good < bad


def test_chain_is_level_continuous():
    X = np.arange(2 * 3 * 4, dtype=float).reshape(6, 4, 1)  # 6 windows of 4 steps
    Y = chain(X, 10)                                       # 2 series from 3 windows each
    assert Y.shape == (2, 10, 1)
    assert Y[0, 4, 0] == Y[0, 3, 0] and Y[0, 8, 0] == Y[0, 7, 0]   # each window starts where the last ended
    np.testing.assert_array_equal(np.diff(Y[0, :4, 0]), np.diff(X[0, :, 0]))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_timegan_conditional_shapes_and_it_learns(cell):
    X = np.concatenate([_sines(64, 2, 0), _sines(64, 2, 1) + 2])
    labels = np.repeat([0, 1], 64)
    model, hist = train_timegan(X, labels, hidden=8, layers=1, cell=cell, schedule=GANSchedule(iterations=30, batch_size=32))
    assert isinstance(model.generator.rnn, torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)
    assert [h["phase"] for h in hist][:2] == [1, 2] and hist[-1]["phase"] == 3
    S = sample_timegan(model, np.array([0, 0, 1, 1, 1]), steps=24, seed=0)
    assert S.shape == (5, 24, 2) and np.isfinite(S).all()
    again = sample_timegan(model, np.array([0, 0, 1, 1, 1]), steps=24, seed=0)
    np.testing.assert_array_equal(S, again)


def test_mmd_is_zero_for_one_set_and_grows_with_the_difference():
    from tsatlas.gan import mmd

    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 24, generator=g)
    same, near, far = mmd(x, x), mmd(x + 0.1, x), mmd(x + 1.0, x)
    assert float(same) < 1e-3 < float(near) < float(far)
    y = (x + 0.5).requires_grad_()
    mmd(y, x).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    # a stack of sets (one per channel) gives each set's distance, with its own kernel widths
    stacked = mmd(torch.stack([x + 0.1, 10 * x + 10.0]), torch.stack([x, 10 * x]))
    assert torch.allclose(stacked, torch.stack([near, far]), rtol=1e-4)


def test_timegan_samples_from_the_averaged_generator_and_reports_its_checks():
    """ema on: the sampled generator is the moving average, not the last step's weights; check()
    sees the joint iterations it asked for; the history carries the two-sample loss."""
    X = _sines(64, 2, 0)
    seen = []
    kw = dict(hidden=8, layers=1, seed=3)
    plain, _ = train_timegan(X, schedule=GANSchedule(iterations=20, batch_size=32, mmd=0.0, ema=0.0), **kw)
    avg, hist = train_timegan(X, schedule=GANSchedule(iterations=20, batch_size=32, mmd=0.0, ema=0.9), **kw,
                              check=lambda it, m: seen.append(it), check_every=5)
    assert seen == [5, 10, 15, 20]
    # same training (the average only reads the weights), different sampled generator
    assert all(torch.equal(a, b) for a, b in zip(plain.embedder.parameters(), avg.embedder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(plain.generator.parameters(), avg.generator.parameters()))
    _, hist = train_timegan(X, schedule=GANSchedule(iterations=3, batch_size=32, mmd=30.0), **kw)
    assert hist[-1]["mmd"] > 0


def test_the_window_critic_reads_standardised_windows_and_steers_the_generator():
    from tsatlas.gan import WindowCritic

    X = _sines(64, 2, 0)
    kw = dict(hidden=8, layers=1, seed=3)
    off, h_off = train_timegan(X, schedule=GANSchedule(iterations=5, batch_size=32, critic=0.0, ema=0.0), **kw)
    on, h_on = train_timegan(X, schedule=GANSchedule(iterations=5, batch_size=32, critic=10.0, ema=0.0), **kw)
    assert h_off[-1]["critic"] is None and h_on[-1]["critic"] > 0  # trained, and its loss recorded
    assert not all(torch.equal(a, b) for a, b in zip(off.generator.parameters(), on.generator.parameters()))
    mean, sd = torch.tensor([1.0, 5.0]), torch.tensor([2.0, 0.5])
    scaled, unit = WindowCritic(mean, sd), WindowCritic(torch.zeros(2), torch.ones(2))
    unit.rnn.load_state_dict(scaled.rnn.state_dict())
    unit.head.load_state_dict(scaled.head.state_dict())
    x = torch.randn(4, 6, 2)
    with torch.no_grad():  # a channel's units do not matter: the critic reads each one standardised
        torch.testing.assert_close(scaled(x * sd + mean), unit(x))
    flat = WindowCritic(torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.0]))  # the second channel constant in the data
    with torch.no_grad():  # whatever the generator puts there, the critic does not see it
        torch.testing.assert_close(flat(torch.cat([x[..., :1], x[..., 1:] * 0.01], -1)), flat(torch.cat([x[..., :1], x[..., 1:] * 0], -1)))
        assert torch.isfinite(flat(x)).all()


@pytest.mark.parametrize("threshold,updates", [(float("inf"), 1), (0.0, 6)])
def test_the_discriminator_is_updated_while_its_last_loss_is_above_the_threshold(monkeypatch, threshold, updates):
    """The decision reads the discriminator's loss of the iteration before (no wait on a GPU's
    queue): the first iteration always updates; a loss never above the threshold stops it there."""
    from tsatlas import gan

    steps = []

    class Counted(torch.optim.Adam):
        def step(self, closure=None):
            steps.append(id(self))
            return super().step(closure)

    monkeypatch.setattr(gan.torch.optim, "Adam", Counted)
    train_timegan(_sines(32, 2, 0), hidden=4, layers=1, device="cpu",
                  schedule=GANSchedule(iterations=6, batch_size=16, d_threshold=threshold, critic=0.0))  # no window critic: its Adam would be the fourth
    optimisers = list(dict.fromkeys(steps))  # in order of first step: embedder, supervisor, generator, discriminator
    assert len(optimisers) == 4 and steps.count(optimisers[3]) == updates


def test_lagged_reads_give_the_value_of_the_call_before():
    from tsatlas.gan import _Lagged

    lag = _Lagged(torch.device("cpu"))
    assert [lag.swap(torch.tensor(v)) for v in (1.0, 2.0, 3.0)] == [None, 1.0, 2.0]


@pytest.mark.parametrize("steps,setting,patch", [(50, "auto", 3), (24, "auto", 1), (50, 1, 1), (50, 5, 5)])
def test_timegan_reads_long_windows_several_steps_at_a_time(monkeypatch, steps, setting, patch):
    """gan_patch=auto: at most 24 recurrent steps (an unpatched GAN's cost grows with the window's
    length); samples come back at the windows' length, the front padding dropped."""
    import tsatlas.generation as gen
    from tsatlas.config import GenerateConfig

    seen, train = [], gen.train_timegan
    monkeypatch.setattr(gen, "train_timegan", lambda X, *a, **k: seen.append(X.shape) or train(X, *a, **k))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, steps, 2)).astype(np.float32)
    labels = np.r_[np.zeros(15, int), np.ones(15, int)]
    cfg = GenerateConfig(method="timegan", gan_iterations=2, gan_hidden=4, gan_layers=1, gan_patch=setting)
    g = gen.Generator("timegan", cfg, 0, None, rng.standard_normal((30, 3)), X, labels, "cpu")
    assert seen == [(30, -(-steps // patch), 2 * patch)]
    x, cl = g.sample(np.array([3, 2]), seed=0)
    assert x.shape == (5, steps, 2) and np.isfinite(x).all() and sorted(cl.tolist()) == [0, 0, 0, 1, 1]
    # a stored GAN (a run's weights, scored again) reads the patch it was trained with, whatever gan_patch says now
    again = gen.Generator("timegan", GenerateConfig(method="timegan"), 0, None, rng.standard_normal((30, 3)), X, labels,
                          "cpu", gan=g.gan)
    assert again.gan_patch == patch and np.array_equal(again.sample(np.array([3, 2]), seed=0)[0], x)


def test_post_hoc_metrics_on_long_windows_run_the_bounded_plan(monkeypatch):
    """Windows of 427 steps (the case that took 30 minutes): at most 2,000 windows, and GRUs over
    at most 24 recurrent steps, 18 steps read at a time. Longer ones: as many values per batch, the
    GRUs no wider (an iteration's cost grows with both)."""
    import tsatlas.generation as gen
    from tsatlas.config import GenerateConfig

    plan = gen.eval_plan(5000, 427, 1, GenerateConfig())
    assert plan == {"windows": 2000, "patch": 18, "recurrent_steps": 24, "hidden": 9, "batch": 128, "iterations": 500,
                    "predictive_iterations": 200, "repeats": 1,
                    "early_stopping": {"check_every": 25, "patience": 4, "min_iterations": 300}}
    small = gen.eval_plan(300, 24, 6, GenerateConfig())
    assert (small["patch"], small["hidden"], small["batch"], small["iterations"]) == (1, 8, 128, 500)  # TimeGAN's Stocks as it is
    values = [p["batch"] * p["recurrent_steps"] * p["patch"] for p in (gen.eval_plan(200, T, 1, GenerateConfig())
                                                                      for T in (1460, 2920, 5840))]
    assert [gen.eval_plan(200, T, 1, GenerateConfig())["hidden"] for T in (1460, 2920, 5840, 100_000)] == [30, 32, 32, 32]
    assert max(values) <= gen.EVAL_VALUES and min(values) > gen.EVAL_VALUES * 0.9
    assert gen.eval_plan(200, 100_000, 1, GenerateConfig())["batch"] == gen.EVAL_MIN_BATCH

    seen = []
    monkeypatch.setattr(gen, "discriminative_score", lambda r, s, **kw: seen.append(("discriminative", r.shape, [s.shape], kw)) or 0.0)
    monkeypatch.setattr(gen, "predictive_scores", lambda r, trains, **kw: seen.append(
        ("predictive", r.shape, [t.shape for t in trains], kw | {"reference_is_real": trains[1] is r})) or [0.0, 1.0])

    class Fixed:
        def sample(self, counts, seed):
            n = int(counts.sum())
            return np.random.default_rng(seed).standard_normal((n, 100, 2)).astype(np.float32), np.zeros(n, int)

    real = np.random.default_rng(0).standard_normal((3000, 100, 2)).astype(np.float32)
    out = gen.evaluate(Fixed(), real, np.zeros(3000, int), GenerateConfig(eval_strict=True, eval_repeats=3), seed=0)
    assert out["eval"]["patch"] == 5 and out["eval"]["windows"] == 2000 and out["eval"]["batch"] == 128 and "eval_seconds" in out
    assert sorted((name, kw["seed"], kw.get("strict", False)) for name, _, _, kw in seen) == sorted(
        [("discriminative", k, False) for k in range(3)] + [("discriminative", k, True) for k in range(3)]
        + [("predictive", k, False) for k in range(3)])  # one fit per seed trains on synthetic and on real windows
    assert all(r == (2000, 20, 10) and all(s == (2000, 20, 10) for s in ss) for _, r, ss, _ in seen)
    assert {(name, len(ss), kw["iterations"]) for name, _, ss, kw in seen} == {("discriminative", 1, 500), ("predictive", 2, 200)}
    assert all(kw["reference_is_real"] for name, _, _, kw in seen if name == "predictive")
    assert out["predictive"] == {"mean": 0.0, "std": 0.0} and out["predictive_real"] == {"mean": 1.0, "std": 0.0}
    assert out["discriminative_strict"] == {"mean": 0.0, "std": 0.0} and out["eval"]["workers"] >= 1
    np.testing.assert_array_equal(gen.patched(real[:2, :6], 4)[0, 0], np.r_[np.zeros(4), real[0, :2].ravel()])


def test_the_strict_discriminator_is_at_least_as_sharp_on_an_easy_case():
    from tsatlas.metrics import discriminative_score

    rng = np.random.default_rng(0)
    real = np.sin(np.linspace(0, 6, 24))[None, :, None] + 0.1 * rng.standard_normal((200, 24, 1))
    fake = 0.1 * rng.standard_normal((200, 24, 1))
    assert discriminative_score(real, fake, iterations=200, strict=True) >= 0.4


@pytest.mark.parametrize("steps", [24, 2400])
def test_the_default_evaluation_budget_trains_the_classifier_enough_to_see_over_smooth_samples(monkeypatch, steps):
    """The classic autoencoder failure: samples that are the real windows without their noise. The
    post-hoc classifier must tell them apart within the default plan's iterations (an under-trained
    one scored such samples near 0, flattering the generator), and not tell real from real; on long
    windows too, read 100 steps at a time by a GRU of capped width on smaller batches."""
    import tsatlas.metrics as metrics
    from tsatlas.config import GenerateConfig
    from tsatlas.generation import eval_plan, patched

    widths, gru = [], metrics._PostHocGRU
    monkeypatch.setattr(metrics, "_PostHocGRU", lambda C, h, *a, **k: widths.append(h) or gru(C, h, *a, **k))
    rng = np.random.default_rng(0)
    t = np.arange(steps) / (steps // 24)
    clean = np.sin(2 * np.pi * (t / rng.uniform(8, 24, (1000, 1)) + rng.uniform(0, 1, (1000, 1))))[..., None]
    real = (clean + 0.3 * rng.standard_normal(clean.shape)).astype(np.float32)
    plan = eval_plan(len(real) // 2, steps, 1, GenerateConfig())
    real, clean = patched(real, plan["patch"]), patched(clean.astype(np.float32), plan["patch"])
    kw = dict(iterations=plan["iterations"], batch=plan["batch"], seed=0)
    assert metrics.discriminative_score(real[:500], clean[500:], **kw) > 0.3
    assert metrics.discriminative_score(real[:500], real[500:], **kw) < 0.1
    assert widths == [plan["hidden"]] * 2 and (plan["hidden"], plan["batch"]) == ((8, 128) if steps == 24 else (32, 40))


def test_post_hoc_training_stops_when_its_held_out_loss_stops_improving_and_keeps_its_best_weights():
    import torch

    from tsatlas.metrics import MIN_ITERATIONS, _train

    gen = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(1))
    model = torch.nn.Module()
    model.w = w
    flat = _train(model, lambda i: (w - 1).pow(2).sum(), 10, 500, 4, gen, lambda: torch.tensor(0.7))
    assert flat == MIN_ITERATIONS  # nothing to learn: stops as soon as it may
    learning = _train(model, lambda i: (w - 100).pow(2).sum(), 10, 500, 4, gen, lambda: (w - 100).pow(2).sum())
    assert learning == 500  # still improving at every check: runs to the cap
    seen = iter([3.0, 1.0] + [2.0] * 100)  # best at the second check: its weights are kept
    marks = []
    _train(model, lambda i: -w.sum(), 10, 500, 4, gen, lambda: marks.append(float(w.detach())) or next(seen))
    assert float(w.detach()) == marks[1]


def test_block_diagonal_gru_is_its_models_side_by_side_and_stays_so_while_training():
    import torch

    from tsatlas.metrics import _PostHocGRU, block_diagonal

    models = [_PostHocGRU(3, 8, 3, seed=s) for s in (0, 1)]
    big, masks = block_diagonal(models)
    x = torch.randn(5, 7, 6)
    with torch.no_grad():
        want = torch.cat([models[0](x[..., :3], False), models[1](x[..., 3:], False)], dim=-1)
        np.testing.assert_allclose(big(x, False).numpy(), want.numpy(), atol=1e-6)
    opt = torch.optim.Adam(big.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        big(x, False).pow(2).mean().backward()
        opt.step()
    for name, p in big.named_parameters():
        off = ~(masks[0][name] | masks[1][name])
        assert bool(off.any()) == (p.dim() == 2), name  # weights have entries between blocks, biases none
        assert (p.detach()[off] == 0).all(), name  # and they stay zero: nothing leaks from one block to the other


def test_predictive_scores_side_by_side_match_each_fit_alone():
    from tsatlas.metrics import predictive_score, predictive_scores

    rng = np.random.default_rng(0)
    t = np.arange(24)[:, None]
    real = (np.sin(t / 3 + rng.uniform(0, 6, (300, 1, 2))) + 0.2 * rng.standard_normal((300, 24, 2))).astype(np.float32)
    noise = rng.standard_normal((300, 24, 2)).astype(np.float32)
    together = predictive_scores(real, [noise, real], iterations=100, seed=3)
    alone = [predictive_score(real, noise, iterations=100, seed=3), predictive_score(real, real, iterations=100, seed=3)]
    np.testing.assert_allclose(together, alone, rtol=2e-3)
    assert together[0] > 1.5 * together[1]  # trained on noise predicts the real windows worse


def test_each_part_of_a_block_diagonal_model_keeps_its_own_best_check():
    import torch

    from tsatlas.metrics import _train

    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(2))
    parts = [{"w": torch.tensor([True, False])}, {"w": torch.tensor([False, True])}]
    checks = iter([[3.0, 3.0], [1.0, 2.0]] + [[2.0, 2.0 - 0.1 * k] for k in range(3)] + [[2.0, 5.0]] * 100)
    marks = []

    def val():
        marks.append(model.w.detach().clone())
        return torch.tensor(next(checks))

    _train(model, lambda i: -model.w.sum(), 10, 500, 4, torch.Generator().manual_seed(0), val, parts)
    w = model.w.detach()
    assert float(w[0]) == float(marks[1][0])  # part 0 best at the second check
    assert float(w[1]) == float(marks[4][1])  # part 1 still improving until the fifth


def test_latent_samples_carry_the_residual_of_a_window_of_their_own_cluster():
    from tsatlas.config import GenerateConfig
    from tsatlas.generation import Generator

    class Mean:  # a decoder whose output is the smooth part: z's first value at every step
        def decode(self, z, steps):
            return np.repeat(np.asarray(z, np.float32)[:, None, :1], steps, axis=1)

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    Z = np.c_[labels * 10.0, rng.standard_normal(100)].astype(np.float32)
    X = Mean().decode(Z, 12) + rng.standard_normal((100, 12, 1)).astype(np.float32) * np.where(labels, 5.0, 0.1)[:, None, None]
    residuals = X - Mean().decode(Z, 12)
    for noise in ("nearest", "residual", "none"):
        gen = Generator("latent", GenerateConfig(noise=noise), 0, Mean(), Z, X, labels)
        x, cl = gen.sample(np.array([40, 40]), seed=3)
        if noise == "none":
            assert np.allclose(x, x[:, :1])  # the decoder's output as it is
            continue
        for c in (0, 1):
            r = x[cl == c] - x[cl == c].mean(axis=(1, 2), keepdims=True)
            own = residuals[labels == c] - residuals[labels == c].mean(axis=(1, 2), keepdims=True)
            # each sample's detail is exactly one of its own cluster's residuals
            assert all(np.isclose(own, s, atol=1e-4).all(axis=(1, 2)).any() for s in r)
        assert x[cl == 1].std(axis=1).mean() > 10 * x[cl == 0].std(axis=1).mean()


def test_nearest_noise_draws_each_donor_from_the_windows_nearest_the_sample_in_z():
    """noise=nearest: a sample's residual comes from one of the generate.donors windows of its cluster
    closest to it in z, and several of them are used (not the single nearest: a copy)."""
    from tsatlas.config import GenerateConfig
    from tsatlas.generation import Generator

    class Zero:
        def decode(self, z, steps):
            return np.zeros((len(z), steps, 1), np.float32)

    rng = np.random.default_rng(0)
    for donors in (64, 8):
        n = 4 * donors
        labels = np.repeat([0, 1], n)
        Z = rng.standard_normal((2 * n, 2)).astype(np.float32)
        X = np.arange(2 * n, dtype=np.float32)[:, None, None] * np.ones((1, 6, 1), np.float32)  # residual j is j everywhere
        gen = Generator("latent", GenerateConfig(noise="nearest", donors=donors), 0, Zero(), Z, X, labels)
        z = rng.standard_normal((50, 2)).astype(np.float32)
        cl = np.repeat([0, 1], 25)
        picked = gen._residuals(cl, seed=1, z=z)[:, 0, 0].astype(int)
        for i, (d, c) in enumerate(zip(picked, cl)):
            members = np.flatnonzero(labels == c)
            near = members[np.argsort(((Z[members] - z[i]) ** 2).sum(1))[:donors]]
            assert d in near
        assert len(set(picked.tolist())) > min(40, 2 * donors - 4)  # drawn among the nearest, not the nearest


def test_a_generator_given_a_trained_timegan_samples_from_it_without_training():
    """A run's stored TimeGAN can be sampled again (benchmarks/rescore.py): Generator(gan=...)
    trains nothing and draws exactly what the model draws."""
    from tsatlas.config import GenerateConfig
    from tsatlas.generation import Generator

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8, 2)).astype(np.float32)
    labels = np.repeat([0, 1], 20)
    model, _ = train_timegan(X, labels, hidden=4, layers=1, schedule=GANSchedule(iterations=2, batch_size=8), device="cpu")
    gen = Generator("timegan", GenerateConfig(method="timegan"), 0, None, None, X, labels, gan=model)
    assert gen.history == [] and gen.gan is model
    x, cl = gen.sample(np.array([3, 5]), seed=2)
    assert np.bincount(cl).tolist() == [3, 5]
    assert np.array_equal(x, sample_timegan(model, cl, 8, seed=2))
