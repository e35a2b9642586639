"""Workloads (kernels/models.py): the model and loss names, the widths a size gives them, the
initialisation at depth, the float64 reference of a deep network and of cross-entropy, and the
command line's refusals of a bad model before anything is made."""

import numpy as np
import pytest

from bench.report import depth
from bench.report.frames import frame
from kernels import cost, lesson, models, numpy_steps, reference
from tests.test_cli import REPO, assert_one_line_error, bench


@pytest.mark.parametrize(
    "name, words",
    [
        ("resnet", ["unknown model 'resnet'", "lesson, mlp:"]),
        ("mlp:", ["at least two widths"]),
        ("mlp:784", ["at least two widths"]),
        ("mlp:784,,1", ["whole numbers"]),
        ("mlp:784,a,1", ["whole numbers"]),
        ("mlp:784,0,1", ["at least 1"]),
        ("mlp:784,-5,1", ["at least 1"]),
    ],
)
def test_a_bad_model_name_is_refused_naming_the_problem(name, words):
    with pytest.raises(models.ModelError) as e:
        models.parse(name)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_widths_follow_the_size_the_model_and_the_loss():
    assert models.widths("lesson", 784, 50) == (784, 50, 1)
    assert models.widths("lesson", 784, 50, "xent") == (784, 50, 10)
    assert models.widths("mlp:784, 16,16,1".replace(" ", ""), 784, 50) == (784, 16, 16, 1)
    assert models.widths("mlp:784,16,1", 784, 50, "xent") == (784, 16, 10)
    with pytest.raises(models.ModelError, match="m=100 columns"):
        models.widths("mlp:784,16,1", 100, 50)
    with pytest.raises(models.ModelError, match="fits one"):
        models.widths("mlp:784,16,3", 784, 50)
    assert models.variants("lesson", (1, 3), 784, 64) == ["mlp:784,64,1", "mlp:784,64,64,64,1"]
    assert models.hidden_width("mlp:784,32,64,1", 50) == 32 and models.hidden_width("lesson", 50) == 50
    assert models.family("mlp:784,64,64,64,1", 784, 0) == models.family("lesson", 784, 64) == "784-64xD-1"
    assert models.depth("mlp:784,64,64,64,1", 784, 0) == 3
    assert models.parameters((784, 50, 1)) == 784 * 50 + 50 + 50 + 1


def test_the_lessons_parameters_and_costs_are_what_they_were():
    w = models.widths("lesson", 30, 7)
    for a, b in zip(models.init_params(w, 3), reference.init_params(30, 7, 3)):
        np.testing.assert_array_equal(a, b)
    n, m, nh = 500, 30, 7
    assert cost.flops("manual", n, m, nh, w) == cost.flops("manual", n, m, nh) == 6 * n * m * nh + 10 * n * nh + 8 * n
    assert cost.memory_bytes("broadcast", n, m, nh, 4, w) == cost.memory_bytes("broadcast", n, m, nh, 4)
    deep = models.widths(models.at_depth("lesson", 4, m, nh), m, nh)
    assert cost.flops("manual", n, m, nh, deep) > cost.flops("manual", n, m, nh)
    assert len(cost.gemms(n, m, nh, deep)) == 3 * (len(deep) - 1)


def test_he_initialisation_keeps_activations_alive_at_depth_sixteen():
    rng = np.random.default_rng(0)
    x = rng.random((500, 64))
    w = models.widths(models.at_depth("mlp:64,128,1", 16, 64, 0), 64, 0)
    ref = reference.forward_backward(x, rng.random(500), *models.init_params(w, 0, np.float64), keep_out=True)
    first, last = (np.sqrt(np.mean(np.maximum(z, 0) ** 2)) for z in (ref["_pres"][0], ref["_pres"][-1]))
    assert 0.2 < last / first < 5


def tiny(loss, widths=(10, 6, 5, 1), n=40, seed=2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, models.CLASSES, n).astype(float)
    w = models.widths("mlp:" + ",".join(map(str, widths)), widths[0], 0, loss)
    params = [p if p.ndim == 2 else rng.normal(0, 0.1, p.shape) for p in models.init_params(w, seed, np.float64)]
    return (rng.random((n, widths[0])), models.targets(labels, loss), *params)


@pytest.mark.parametrize("loss", models.LOSSES)
def test_the_deep_reference_matches_finite_differences(loss):
    inputs = tiny(loss)
    ref = reference.forward_backward(*inputs)
    names = models.output_names(3)
    for name, i in zip(names[1:], [0, *range(2, len(inputs))]):
        g = np.zeros_like(inputs[i])
        for idx in np.ndindex(g.shape):
            for sign in (1, -1):
                args = [np.array(a, copy=True) for a in inputs]
                args[i][idx] += sign * 1e-6
                g[idx] += sign * reference.forward_backward(*args)["loss"] / 2e-6
        np.testing.assert_allclose(ref[name], g, rtol=1e-5, atol=1e-8, err_msg=name)


def test_xent_is_the_negative_log_likelihood_of_the_label():
    x, y, *params = tiny("xent")
    out = reference.forward_backward(x, y, *params, keep_out=True)
    logits = out["_out"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.isclose(out["loss"], -np.mean(np.log(p[np.arange(len(y)), y.argmax(1)])))


def test_a_deep_step_that_forgets_a_relu_mask_fails_the_check():
    inputs = tuple(np.asarray(a, np.float32) for a in tiny("mse", widths=(30, 20, 20, 20, 1), n=400))
    ref = reference.Reference(inputs, "float32")
    pres = lesson.pre_activations(numpy_steps.OPS, inputs[0], *inputs[2:])
    good = dict(zip(ref.names, numpy_steps.manual_step(*inputs)))
    assert ref.check(good, pres).ok
    leaky = numpy_steps.OPS.__dict__ | {"relu_grad": lambda x, dy: dy}
    from types import SimpleNamespace

    wrong = dict(zip(ref.names, lesson.manual_step(SimpleNamespace(**leaky), *inputs)))
    result = ref.check(wrong, pres)
    assert not result.ok and "relative error" in result.problem
    flipped = [p.copy() for p in pres]
    far = np.unravel_index(np.argmax(np.abs(flipped[2])), flipped[2].shape)
    flipped[2][far] = -flipped[2][far]
    assert "not near zero" in ref.check(good, flipped).problem


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "resnet"], ["unknown model 'resnet'"]),
        (["--model", "mlp:784,0,1"], ["at least 1"]),
        (["--model", "mlp:100,8,1"], ["takes 100 inputs", "m=784"]),
        (["--model", "mlp:784,8,4"], ["4 outputs", "mse"]),
        (["--loss", "hinge"], ["unknown loss 'hinge'"]),
        (["--depths", "0,2"], ["bad --depths"]),
        (["--depths", "two"], ["bad --depths"]),
        (["--model", "mlp:784,1", "--depths", "2"], ["no hidden layer"]),
        (["--size", "100000000,784,8", "--model", "mlp:784,4096,4096,1"], ["widths 784,4096,4096,1", "GiB"]),
    ],
)
def test_bad_model_flags_are_refused_in_one_line_before_anything_is_made(args, words, tmp_path):
    result = bench("run", "--framework", "numpy", "--quick", "--out", tmp_path / "out", *args)
    assert_one_line_error(result, *words)
    assert not (tmp_path / "out").exists()


def test_a_run_of_two_models_and_both_losses_keeps_them_apart(tmp_path):
    from bench import records

    out = tmp_path / "run"
    result = bench(
        "run", "--framework", "numpy", "--size", "300,784,8", "--model", "lesson", "mlp:784,6,6,1",
        "--loss", "mse", "xent", "--quick", "--no-counters", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    recs = records.read(out / "records.jsonl")
    seen = {(r.model, r.loss_fn, r.step): r for r in recs}
    assert {k[:2] for k in seen} == {(m, loss) for m in ("lesson", "mlp:784,6,6,1") for loss in ("mse", "xent")}
    assert all(r.status == "ok" and r.max_rel_err < 1e-4 for r in recs)
    assert seen["mlp:784,6,6,1", "xent", "manual"].parameters == models.parameters((784, 6, 6, 10))
    assert set(seen["mlp:784,6,6,1", "mse", "manual"].rel_errs) == set(models.output_names(3))
    assert len({r.label for r in recs}) == len(recs)
    text = (out / "report.md").read_text()
    assert "model=mlp:784,6,6,1" in text and "loss_fn=xent" in text


def test_depth_fits_recover_a_known_slope_and_overhead():
    """Samples made as overhead + per-layer x depth with noise: the fit's intervals hold the truth,
    compiled (a smaller slope) is found to overtake eager where the lines cross."""
    from bench.records import Record

    rng = np.random.default_rng(0)
    recs = []
    for backend, over, per in (("eager", 1e-3, 2e-3), ("function", 5e-3, 0.5e-3)):
        for d in (1, 2, 4, 8):
            samples = over + per * d + rng.normal(0, 1e-5, 30)
            recs.append(
                Record(
                    framework="tensorflow",
                    step="manual",
                    backend=backend,
                    device="cpu",
                    n=100,
                    m=784,
                    nh=64,
                    dtype="float32",
                    model=models.at_depth("lesson", d, 784, 64),
                    status="ok",
                    run_id="r",
                    samples_s=tuple(samples),
                    rounds=tuple(range(30)),
                )  # fmt: skip
            )
    df = frame(recs)
    fits = depth.fits(df).set_index("backend")
    assert fits.per_layer_lo["eager"] < 2.0 < fits.per_layer_hi["eager"]
    assert fits.overhead_lo["function"] < 5.0 < fits.overhead_hi["function"]
    vs = depth.versus(df)
    row = vs[(vs.kind == "compiled") & (vs.backend == "function")].iloc[0]
    assert row.crossing == pytest.approx(4 / 1.5, rel=0.05) and row.cheaper == "deeper"
    assert row.faster_from == 4 and row.faster == [4, 8] and row.slower == [1, 2] and not row.undecided


# ---------------------------------------------------------------- a workload you bring

EXAMPLE = str(REPO / "examples" / "tanh_model.py")


def test_the_example_model_loads_and_its_backward_agrees_with_finite_differences():
    from kernels.lesson import Linear

    spec = models.user_spec(f"{EXAMPLE}:TANH_MLP")
    assert isinstance(spec[0], Linear) and spec[1].__name__ == "Tanh"
    assert models.widths(f"{EXAMPLE}:TANH_MLP", 784, 0) == (784, 50, 1)
    assert models.widths(f"{EXAMPLE}:TANH_CLASSIFIER", 784, 0, "xent") == (784, 128, 64, 10)
    assert models.needs(f"{EXAMPLE}:TANH_MLP") == {"tanh": "Tanh"}
    models.check_backward(f"{EXAMPLE}:TANH_MLP")
    models.check_backward(f"{EXAMPLE}:TANH_CLASSIFIER")


def user_file(tmp_path, body, name="model.py"):
    path = tmp_path / name
    path.write_text("from kernels.lesson import Linear, Module, Relu\n" + body)
    return str(path)


def test_a_wrong_hand_written_backward_is_refused_when_the_model_loads(tmp_path):
    path = user_file(
        tmp_path,
        "class Square(Module):\n"
        "    def forward(self, x):\n        return x * x\n"
        "    def backward(self, dy):\n        return dy * self.args[0], ()  # should be 2 x dy\n"
        "M = [Linear(6, 4), Square, Linear(4, 1)]\n",
    )
    models.user_spec(f"{path}:M")
    with pytest.raises(models.ModelError, match="disagrees with finite differences"):
        models.check_backward(f"{path}:M")


@pytest.mark.parametrize(
    "body, name, words",
    [
        ("M = [Linear(6, 4), Relu, Linear(4, 1)]\n", "OTHER", ["defines no 'OTHER'"]),
        ("raise ValueError('broken on purpose')\n", "M", ["importing", "ValueError: broken on purpose"]),
        ("M = [Linear(6, 4), Linear(5, 1)]\n", "M", ["item 1 takes 5 inputs", "gives 4"]),
        ("M = [Relu]\n", "M", ["no Linear layer"]),
        ("M = [Linear(6, 4), 'relu', Linear(4, 1)]\n", "M", ["item 1", "neither"]),
        ("M = []\n", "M", ["non-empty list"]),
    ],
)
def test_a_bad_user_model_is_refused_in_one_line(tmp_path, body, name, words):
    model = f"{user_file(tmp_path, body)}:{name}"
    with pytest.raises(models.ModelError) as e:
        models.parse(model)
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value), str(e.value)
    result = bench("run", "--framework", "numpy", "--quick", "--out", tmp_path / "out", "--model", model)
    assert_one_line_error(result, *words)
    assert not (tmp_path / "out").exists()


def test_a_user_model_is_checked_and_timed_where_its_ops_exist_and_skipped_where_not(tmp_path):
    """The example's Tanh layer in NumPy, and a layer needing an op no framework has: its cases are
    skipped naming the op and the layer; keras and broadcast build the lesson's own layers."""
    from bench import records

    odd = user_file(
        tmp_path,
        "class Erf(Module):\n    needs = ('erf',)\n"
        "    def forward(self, x):\n        return self.ops.erf(x)\n"
        "    def backward(self, dy):\n        return dy, ()\n"
        "M = [Linear(784, 4), Erf, Linear(4, 1)]\n",
    )
    out = tmp_path / "run"
    result = bench(
        "run", "--framework", "numpy", "--size", "200,784,8", "--model", f"{EXAMPLE}:TANH_MLP",
        "--quick", "--no-counters", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    recs = records.read(out / "records.jsonl")
    assert {r.step for r in recs} == {"manual", "module"} and all(r.status == "ok" for r in recs)
    assert all(r.model == f"{EXAMPLE}:TANH_MLP" and r.max_rel_err < 1e-4 for r in recs)
    from bench import frameworks
    from bench.records import CaseKey
    from bench.run.prepare import skip_reason

    fw = frameworks.load("numpy")
    key = CaseKey("numpy", "manual", "eager", "cpu", 200, 784, 4, "float32", model=f"{odd}:M")
    assert "numpy's ops lack erf (layer Erf)" in skip_reason(fw, key)
    keras = CaseKey("tensorflow", "keras", "eager", "cpu", 200, 784, 50, "float32", model=f"{EXAMPLE}:TANH_MLP")
    assert "builds Keras Dense layers" in skip_reason(fw, keras)
