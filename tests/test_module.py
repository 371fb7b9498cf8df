"""Module: finding parameters, modes, state dicts, checkpoints on disk."""

from __future__ import annotations

import os

import numpy
import pytest

import minissd.nn as nn
from minissd import Tensor, backend, to_numpy
from minissd.nn import BatchNorm2d, Conv2d, L2Norm, MaxPool2d, Module, ModuleList, Parameter, ReLU, Sequential


class Block(Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = Conv2d(2, 3, 3, padding=1)
        self.bn = BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x))


class Net(Module):
    def __init__(self) -> None:
        super().__init__()
        self.base = Sequential(Conv2d(1, 2, 3), ReLU(), MaxPool2d(2))
        self.block = Block()
        self.heads = ModuleList([Conv2d(3, 4, 1), Conv2d(3, 5, 1, bias=False)])
        self.plain_list = [L2Norm(3)]  # a plain Python list of modules is searched too
        self.scale = Parameter(numpy.ones(1, numpy.float32))
        self.not_a_param = Tensor(numpy.zeros(2))  # a Tensor attribute that is not a Parameter

    def forward(self, x):
        return x


def test_named_parameters_recurse_with_dotted_names():
    names = [n for n, _ in Net().named_parameters()]
    assert names == [
        "scale",
        "base.0.weight", "base.0.bias",
        "block.conv.weight", "block.conv.bias", "block.bn.weight", "block.bn.bias",
        "heads.0.weight", "heads.0.bias", "heads.1.weight",
        "plain_list.0.weight",
    ]


def test_parameters_counts_and_sharing():
    net = Net()
    assert net.num_parameters() == 1 + (2 * 9 + 2) + (3 * 2 * 9 + 3) + 3 + 3 + (4 * 3 + 4) + 5 * 3 + 3
    shared = Sequential(net.heads[0], net.heads[0])  # the same layer twice: its parameters count once
    assert len(list(shared.parameters())) == 2
    net.scale.requires_grad = False
    assert net.num_parameters(trainable_only=True) == net.num_parameters() - 1


def test_named_modules_and_children():
    net = Net()
    names = [n for n, _ in net.named_modules()]
    assert names[:5] == ["", "base", "base.0", "base.1", "base.2"]
    assert "heads.1" in names and "plain_list.0" in names and "block.bn" in names
    assert [n for n, _ in net.named_children()] == ["base", "block", "heads", "plain_list.0"]


def test_train_eval_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert net.block.bn.training


def test_zero_grad_clears_every_gradient():
    net = Net()
    for p in net.parameters():
        p.grad = backend.xp().ones(p.shape, dtype=p.dtype)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_holds_parameters_and_buffers():
    sd = Net().state_dict()
    assert "block.bn.running_mean" in sd and "block.bn.running_var" in sd
    assert "not_a_param" not in sd
    assert sd["block.conv.weight"].shape == (3, 2, 3, 3)


def test_state_dict_round_trip_through_a_file(tmp_path):
    a, b = Net(), Net()
    a.block.bn.running_mean[...] = backend.asarray([1.0, 2.0, 3.0])
    path = tmp_path / "ckpt.npz"
    nn.save(a, path)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temporary file left behind
    before = b.block.conv.weight.data
    nn.load(b, path)
    assert b.block.conv.weight.data is before  # copied into place: an optimizer's references stay valid
    for (k, va), (k2, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2
        numpy.testing.assert_array_equal(to_numpy(va), to_numpy(vb))
    with numpy.load(path, allow_pickle=False) as f:
        assert set(f.files) == set(a.state_dict())


def test_save_keeps_the_exact_name_and_survives_a_failed_write(tmp_path):
    path = tmp_path / "weights.ckpt"  # not .npz: NumPy alone would have appended ".npz"
    net = Net()
    nn.save(net, path)
    good = path.read_bytes()
    with pytest.raises(TypeError):
        nn.save_npz(path, {"bad": numpy.array([object()], dtype=object)})
    assert path.read_bytes() == good  # the failed write left the old checkpoint intact
    assert sorted(os.listdir(tmp_path)) == ["weights.ckpt"]


def test_load_refuses_pickled_arrays(tmp_path):
    path = tmp_path / "evil.npz"
    numpy.savez(path, x=numpy.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        nn.load_npz(path)


def test_load_state_dict_lists_every_problem():
    net = Net()
    sd = {k: to_numpy(v) for k, v in net.state_dict().items()}
    del sd["heads.0.bias"]
    sd["extra.weight"] = numpy.zeros(3)
    sd["block.conv.weight"] = numpy.zeros((3, 2, 5, 5))
    with pytest.raises(KeyError) as err:
        Net().load_state_dict(sd)
    msg = str(err.value)
    assert "missing keys: heads.0.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "block.conv.weight: checkpoint (3, 2, 5, 5) vs model (3, 2, 3, 3)" in msg


def test_load_state_dict_non_strict_returns_the_differences():
    net = Net()
    sd = {k: to_numpy(v) for k, v in net.state_dict().items()}
    del sd["scale"]
    sd["head.extra"] = numpy.zeros(1)
    sd["block.conv.bias"] = numpy.full(3, 7.0)
    target = Net()
    result = target.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["scale"] and result.unexpected_keys == ["head.extra"]
    assert to_numpy(target.block.conv.bias).tolist() == [7.0, 7.0, 7.0]
    sd["block.conv.bias"] = numpy.zeros(4)
    with pytest.raises(KeyError, match="mis-shaped"):  # a wrong shape is an error even when not strict
        target.load_state_dict(sd, strict=False)


@pytest.mark.needs("conv2d", "max_pool")
def test_sequential_indexing_and_iteration():
    seq = Sequential(Conv2d(1, 2, 3), ReLU(), MaxPool2d(2))
    assert len(seq) == 3 and isinstance(seq[-1], MaxPool2d)
    assert isinstance(seq[:2], Sequential) and len(seq[:2]) == 2
    assert [type(m).__name__ for m in seq] == ["Conv2d", "ReLU", "MaxPool2d"]
    x = Tensor(backend.xp().ones((1, 1, 6, 6), dtype=numpy.float32))
    numpy.testing.assert_array_equal(to_numpy(seq(x).data), to_numpy(seq[2](seq[1](seq[0](x))).data))
    with pytest.raises(TypeError, match="not a Module"):
        Sequential(Conv2d(1, 2, 3), "relu")
    assert "Conv2d(1, 2, kernel_size=(3, 3)" in repr(seq)


def test_module_list_is_a_list_of_registered_modules():
    ml = ModuleList([Conv2d(1, 1, 1)])
    ml.append(Conv2d(1, 2, 1))
    assert len(ml) == 2 and [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_parameter_is_a_tensor_that_requires_grad():
    p = Parameter(numpy.zeros(3, numpy.float32))
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf


class DictOfParameters(Module):
    def __init__(self) -> None:
        super().__init__()
        self.scales = {"s": Parameter(numpy.full(2, 3.0, numpy.float32)), "t": Parameter(numpy.ones(1, numpy.float32))}
        self.layers = {"head": L2Norm(2)}  # a dict of modules was already walked by named_children

    def forward(self, x):
        return x


def test_parameters_in_a_dict_attribute_are_trained_and_saved(tmp_path):
    net = DictOfParameters()
    assert [n for n, _ in net.named_parameters()] == ["scales.s", "scales.t", "layers.head.weight"]
    assert any(p is net.scales["s"] for p in net.parameters())  # an optimizer would update it
    assert set(net.state_dict()) == {"scales.s", "scales.t", "layers.head.weight"}
    net.scales["s"].data[...] = backend.asarray([7.0, 8.0])
    path = tmp_path / "dict.npz"
    nn.save(net, path)
    other = DictOfParameters()
    nn.load(other, path)  # strict: no missing or unexpected key
    assert to_numpy(other.scales["s"]).tolist() == [7.0, 8.0]


def test_save_npz_writes_any_dict_of_arrays_atomically(tmp_path):
    # what training checkpoints store: arrays of several dtypes, a number and a JSON string
    path = tmp_path / "sub" / "ckpt.npz"  # the folder is created
    arrays = {"model/w": numpy.arange(6.0).reshape(2, 3), "optim/step": 7, "meta": numpy.array('{"step": 7}'),
              "mask": numpy.array([True, False])}
    nn.save_npz(path, arrays)
    assert sorted(os.listdir(path.parent)) == ["ckpt.npz"]
    back = nn.load_npz(path)
    assert set(back) == set(arrays)
    numpy.testing.assert_array_equal(back["model/w"], arrays["model/w"])
    assert int(back["optim/step"]) == 7 and str(back["meta"]) == '{"step": 7}'
    assert back["mask"].tolist() == [True, False]
