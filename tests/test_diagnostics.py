"""Weight diagnostics: each measure against an independent computation, the callback in a real fit,
the rank-correlation rule on known inputs, and the same table through the tab's route and the report."""

import math
import os

import keras
import numpy as np
import pytest
from scipy import stats
from conftest import tbreg
from demo_tree import turning, write_run
from tb_server import Server

import tbreg.callbacks as cbs
from tbreg import analysis, reader
from tbreg.callbacks import diagnostics as diag
from tbreg.events import EventWriter


# ---------------------------------------------------------------------------------------------
# The measures


@pytest.mark.parametrize("shape", [(64, 32), (20, 90), (3, 3, 4, 8), (16, 16)])
def test_norms_and_stable_rank_match_numpy(shape):
    w = np.random.default_rng(1).normal(size=shape)
    got = diag.kernel_measures(w)
    matrix = w.reshape(-1, shape[-1])
    assert got["frobenius"] == pytest.approx(np.linalg.norm(matrix, "fro"), rel=1e-12)
    assert got["spectral"] == pytest.approx(np.linalg.norm(matrix, 2), rel=1e-10)
    singular = np.linalg.svd(matrix, compute_uv=False)
    assert got["stable_rank"] == pytest.approx(np.sum(singular**2) / singular[0] ** 2, rel=1e-10)
    assert np.sort(diag.eigenvalues(matrix)) == pytest.approx(np.sort(singular**2), rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("alpha", [1.8, 2.5, 4.0])
def test_alpha_recovers_a_pareto_exponent(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    # a body the power law does not describe, below a Pareto tail p(x) ∝ x^-alpha from x = 1
    body = rng.uniform(0.05, 0.9, size=1500)
    tail = rng.pareto(alpha - 1, size=1500) + 1.0
    got, xmin, n, d = diag.powerlaw_alpha(np.concatenate([body, tail]))
    assert got == pytest.approx(alpha, abs=0.15)
    assert 0.9 <= xmin <= 1.5 and 500 <= n <= 1600 and 0 <= d < 0.05


def test_alpha_is_the_closed_form_mle_at_the_chosen_xmin():
    x = np.random.default_rng(3).lognormal(size=400)
    alpha, xmin, n, _ = diag.powerlaw_alpha(x)
    tail = x[x >= xmin]
    assert len(tail) == n and alpha == pytest.approx(1 + n / np.sum(np.log(tail / xmin)), rel=1e-12)


def test_small_layers_are_flagged_unreliable():
    rng = np.random.default_rng(0)
    assert diag.kernel_measures(rng.normal(size=(40, 16)))[diag.UNRELIABLE] == 1.0  # a 16-unit layer
    assert diag.kernel_measures(rng.normal(size=(512, 10)))[diag.UNRELIABLE] == 1.0  # a 10-class head
    big = diag.kernel_measures(rng.normal(size=(256, 128)))
    assert big[diag.UNRELIABLE] == 0.0 and math.isfinite(big["alpha"])
    broken = diag.kernel_measures(np.full((64, 64), np.nan))
    assert math.isnan(broken["spectral"]) and broken[diag.UNRELIABLE] == 1.0


# ---------------------------------------------------------------------------------------------
# The callback in a plain model.fit


def test_callback_logs_every_kernel_every_freq_epochs_and_the_last(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 2)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12, 2)),
            keras.layers.Conv1D(4, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(8, name="hidden"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    model.compile("adam", "binary_crossentropy")
    callback = cbs.WeightDiagnostics(str(tmp_path), freq=2)
    assert callback.tbreg_model_freq == 2  # the fast engine ends its blocks of epochs where it logs
    model.fit(x, y, epochs=4, verbose=0, callbacks=[callback])
    scalars = reader.scalars(str(tmp_path / "train"))
    layers = ("conv", "hidden", "out")
    measures = (*diag.MEASURES, diag.UNRELIABLE)
    assert set(scalars) == {diag.tag(m, layer) for m in measures for layer in layers}
    assert all([p.step for p in points] == [0, 2, 3] for points in scalars.values())  # 0, 2 and the last
    for layer in layers:
        kernel = model.get_layer(layer).kernel.numpy()
        matrix = kernel.reshape(-1, kernel.shape[-1])
        at_end = {m: scalars[diag.tag(m, layer)][-1].value for m in measures}
        assert at_end["spectral"] == pytest.approx(np.linalg.norm(matrix, 2), rel=1e-6)
        assert at_end["frobenius"] == pytest.approx(np.linalg.norm(matrix, "fro"), rel=1e-6)
        assert at_end[diag.UNRELIABLE] == 1.0  # every layer here is far too small for a tail fit
    with pytest.raises(ValueError, match="freq"):
        cbs.WeightDiagnostics(str(tmp_path), freq=-1)


def test_make_adds_diagnostics_unless_its_freq_is_0():
    assert "diagnostics" in cbs.NAMES
    made = cbs.make("logs", ["diagnostics"], diagnostics_freq=3)
    assert [type(c).__name__ for c in made] == ["WeightDiagnostics"] and made[0].freq == 3
    assert cbs.make("logs", ["diagnostics"], diagnostics_freq=0) == []
    x, y = np.zeros((50, 3)), np.zeros(50)
    sharp = cbs.make("logs", ["diagnostics"], diagnostics_freq=0, sharpness_examples=20, train_data=(x, y))
    assert sharp[0].freq == 0 and len(sharp[0].sharpness_data[0]) == 20


# ---------------------------------------------------------------------------------------------
# The rule: rank correlation with the gap


def row(best_epoch, gap):
    s = analysis.Summary("completed", 1, "epoch_loss", best_epoch, 1.0, 1.0 - gap, gap, 10, None)
    return analysis.FamilyRow(s, "train", None, analysis.Verdict("fits", "fits"))


def layered(epochs_values: dict, measure="spectral", layers=("a", "b"), unreliable=()) -> dict:
    """{tag: curve}: every layer's `measure` has the curve `epochs_values` (so the product is value²)."""
    out = {diag.tag(measure, layer): dict(epochs_values) for layer in layers}
    out.update(
        {diag.tag(diag.UNRELIABLE, layer): {e: float(layer in unreliable) for e in epochs_values} for layer in layers}
    )
    return out


def by_name(correlations):
    return {c.diagnostic: c for c in correlations}


def test_rank_correlation_is_plus_one_when_a_diagnostic_orders_runs_like_the_gap():
    gaps = [0.05, 0.30, 0.10, 0.20]
    rows = [row(10, g) for g in gaps]
    # logged every 5 epochs: the value at the logged epoch nearest the best epoch (10) counts
    spectral = [layered({5: 99.0, 10: 1 + 3 * g, 15: 0.1}) for g in gaps]
    got = by_name(analysis.diagnostic_correlations(rows, spectral))["log_prod_spectral"]
    assert got.n == 4 and got.rho == pytest.approx(1.0) and got.p == pytest.approx(1 / 12)
    assert [v for _, v, _ in got.values] == pytest.approx([2 * math.log(1 + 3 * g) for g in gaps])
    assert "larger gap" in got.note
    reverse = [layered({10: 1 - g}, "frobenius") for g in gaps]
    got = by_name(analysis.diagnostic_correlations(rows, reverse))["log_prod_frobenius"]
    assert got.rho == pytest.approx(-1.0) and "smaller gap" in got.note
    # nothing logged for stable rank: n = 0, no ρ
    assert by_name(analysis.diagnostic_correlations(rows, spectral))["mean_stable_rank"].rho is None


def test_nearest_logged_epoch_and_unreliable_layers():
    assert analysis.nearest_epoch([0, 5, 10], 7) == 5 and analysis.nearest_epoch([0, 5, 10], 8) == 10
    assert analysis.nearest_epoch([0, 10], 5) == 0 and analysis.nearest_epoch([], 3) is None
    d = next(d for d in analysis.DIAGNOSTICS if d.name == "mean_alpha")
    scalars = {**layered({4: 2.0}, "alpha", ("big",)), **layered({4: 9.0}, "alpha", ("head",), unreliable=("head",))}
    assert analysis.diagnostic_value(analysis.diagnostic_layers(scalars), d, 3) == (2.0, 4)
    only_small = layered({4: 9.0}, "alpha", ("head",), unreliable=("head",))
    assert analysis.diagnostic_value(analysis.diagnostic_layers(only_small), d, 3) == (None, 4)


def test_fewer_than_three_runs_give_no_correlation():
    got = analysis.diagnostic_correlations([row(1, 0.1), row(1, 0.2)], [layered({1: 1.0}), layered({1: 2.0})])
    assert all(c.rho is None and c.p is None and "not enough runs" in c.note for c in got)
    same = analysis.diagnostic_correlations([row(1, g) for g in (0.1, 0.2, 0.3)], [layered({1: 1.0})] * 3)
    assert (
        by_name(same)["log_prod_spectral"].rho is None
        and "same for every run" in by_name(same)["log_prod_spectral"].note
    )


# ---------------------------------------------------------------------------------------------
# The tab's route and the report show the same table


GAPS = {"a": 0.02, "b": 0.08, "c": 0.05, "d": 0.12}


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """`fam/{a,b,c,d}`: known gaps at the best epoch (20); `spectral` ordered like the gap, `frobenius`
    against it, logged every 5 epochs; `hidden` (200 eigenvalues) reliable, `logits` not."""
    root = tmp_path_factory.mktemp("diag") / "runs"
    for k, (name, gap) in enumerate(GAPS.items()):
        run_dir = root / "fam" / name
        val = turning(20, 30, 0.5, seed=k)
        write_run(run_dir, "fam", name, {"validation": val, "train": val - gap})
        writer = EventWriter(str(run_dir / "train"))
        for epoch in range(0, 30, 5):
            values = {}
            for layer, reliable in (("hidden", 1.0), ("logits", 0.0)):
                values[diag.tag("spectral", layer)] = 1.0 + gap * 10 + epoch / 100
                values[diag.tag("frobenius", layer)] = 5.0 - gap * 10
                values[diag.tag("stable_rank", layer)] = 3.0
                values[diag.tag("alpha", layer)] = 2.0 + k if reliable else 7.0
                values[diag.tag(diag.UNRELIABLE, layer)] = 1.0 - reliable
            writer.scalars(values, epoch)
        writer.close()
    return root


def test_diagnostics_route_answers_the_rule(family):
    got = Server(family).json("diagnostics", family="fam")
    assert [r["name"] for r in got["runs"]] == list(GAPS)
    a = got["runs"][0]
    assert a["best_epoch"] == 20 and a["gap"] == pytest.approx(GAPS["a"], abs=1e-6)
    assert set(a["diagnostics"]) == {"spectral", "frobenius", "stable_rank", "alpha", diag.UNRELIABLE}
    assert a["diagnostics"]["spectral"]["hidden"]["steps"] == [0, 5, 10, 15, 20, 25]
    assert a["diagnostics"]["spectral"]["hidden"]["values"][4] == pytest.approx(1.0 + GAPS["a"] * 10 + 0.2)
    rho = {c["diagnostic"]: c for c in got["correlations"]}
    assert rho["log_prod_spectral"]["rho"] == pytest.approx(1.0) and rho["log_prod_spectral"]["n"] == 4
    assert rho["log_prod_frobenius"]["rho"] == pytest.approx(-1.0)
    # α of `hidden` only (2, 3, 4, 5 for a, b, c, d; `logits`' 7 is unreliable)
    assert rho["mean_alpha"]["rho"] == pytest.approx(stats.spearmanr([2, 3, 4, 5], list(GAPS.values())).statistic)
    assert rho["mean_stable_rank"]["rho"] is None and rho["mean_stable_rank"]["n"] == 4
    missing = Server(family).get("diagnostics", family="nope")
    assert missing.status_code == 404


def test_report_shows_the_same_table(family, tmp_path, capsys):
    from test_share import parse_report

    out = tmp_path / "report.html"
    code, _, err = tbreg(capsys, "share", "report", str(family), "-o", str(out))
    assert code == 0, err
    page, data = parse_report(out)
    table = next(t["rows"] for t in page.tables if t["class"] == "diagnostics")
    assert table[0][:5] == ["diagnostic", "per run, at its best epoch", "n", "Spearman ρ with the gap", "p"]
    cells = {r[0]: r for r in table[1:]}
    assert cells["log_prod_spectral"][2:5] == ["4", "+1.00", "0.083"]
    assert cells["log_prod_frobenius"][3] == "-1.00" and cells["mean_stable_rank"][3] == "–"
    values = next(t["rows"] for t in page.tables if t["class"] == "diagnostic-values")
    assert [r[0] for r in values[1:]] == list(GAPS)
    titles = {c["layout"]["title"]["text"] for c in data["charts"]}
    assert "diagnostics/spectral/hidden" in titles and "diagnostics/alpha_unreliable/logits" not in titles
    assert "α unreliable" in " ".join(page.text) and "logits" in " ".join(page.text)
    runs = reader.load_runs(str(family))
    members = reader.members(runs)
    assert [c.rho for c in reader.diagnostic_correlations(members, reader.summarize_family(members))][:2] == [
        pytest.approx(1.0),
        pytest.approx(-1.0),
    ]
    assert os.path.getsize(out) > 0


def test_sharpness_at_each_new_best_matches_a_perturbed_copy_and_restores_the_weights(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype("float32")[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile("adam", loss, metrics=[keras.metrics.BinaryCrossentropy(from_logits=True)])
    callback = cbs.WeightDiagnostics(str(tmp_path), freq=0, sharpness_data=(x[:80], y[:80]), sigma=0.1, samples=3)
    history = model.fit(
        x[:80], y[:80], validation_data=(x[80:], y[80:]), epochs=5, verbose=0, callbacks=[callback]
    ).history
    val = history["val_binary_crossentropy"]
    new_best = [e for e in range(len(val)) if val[e] < min(val[:e], default=np.inf)]
    got = reader.scalars(str(tmp_path / "train"))
    assert set(got) == {diag.tag(diag.SHARPNESS, diag.MODEL)}  # freq=0: no kernel measures
    assert [p.step for p in got[diag.tag(diag.SHARPNESS, diag.MODEL)]] == new_best
    # an estimate now against an independent one: perturbed copies of the model, the same draws
    weights = [w.copy() for w in model.get_weights()]
    expected = []
    noise = np.random.default_rng(0)
    base = float(loss(y[:80], model.predict(x[:80], verbose=0)))
    for _ in range(3):
        copy = keras.models.clone_model(model)
        copy.set_weights([w + 0.1 * np.abs(w) * noise.standard_normal(w.shape).astype(w.dtype) for w in weights])
        expected.append(float(loss(y[:80], copy.predict(x[:80], verbose=0))))
    assert callback.sharpness("binary_crossentropy") == pytest.approx((np.mean(expected) - base) / base, rel=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))  # restored


def test_tab_section_shows_the_table_and_a_line_per_run(family):
    """The tab in a real TensorBoard and headless Chromium: the rank-correlation table, and the
    chosen measure of the chosen layer as one line per run with a star where the table reads it."""
    from test_plugin_browser import Browser, in_frame, start_tensorboard

    proc, url = start_tensorboard(family)
    browser = Browser()
    try:
        browser.goto(url + "#overfitting")
        cells = browser.wait_for(
            in_frame(
                "const rows = doc.querySelectorAll('#diagnostics table.diagnostics tbody tr');"
                "return rows.length ? [...rows].map((r) => [...r.cells].map((c) => c.textContent)) : null;"
            )
        )
        by_name = {row[0]: row for row in cells}
        assert by_name["log_prod_spectral"][2:5] == ["4", "+1.00", "0.083"]
        assert by_name["log_prod_frobenius"][3] == "-1.00" and "not enough runs" in by_name["sharpness"][5]
        traces = browser.wait_for(in_frame("return doc.querySelectorAll('#diagnostics .scatterlayer .trace').length;"))
        assert traces == 2 * len(GAPS)  # a line and its star per run
        browser.evaluate(
            in_frame(
                "const s = doc.querySelector('#diagnostics-measure'); s.value = 'alpha';"
                "s.dispatchEvent(new Event('change')); return true;"
            )
        )
        browser.evaluate(
            in_frame(
                "const s = doc.querySelector('#diagnostics-layer'); s.value = 'logits';"
                "s.dispatchEvent(new Event('change')); return true;"
            )
        )
        note = browser.wait_for(
            in_frame("const m = doc.querySelector('#diagnostics .message'); return !m.hidden && m.textContent;")
        )
        assert "α unreliable on logits" in note and all(name in note for name in GAPS)
        assert not browser.errors
    finally:
        browser.close()
        proc.terminate()
        proc.wait(timeout=30)
