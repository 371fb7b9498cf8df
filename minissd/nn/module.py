"""Module and Parameter: how a network holds its weights, finds them, saves and restores them.

A :class:`Module` is an object with a ``forward`` method. Its learnable weights are
:class:`Parameter` attributes; its sub-layers are Module attributes (or lists, tuples and dicts of them,
or a :class:`ModuleList`); arrays that are state but not learned (BatchNorm's running statistics) are
registered with :meth:`Module.register_buffer`. Nothing else needs declaring: ``named_parameters()``
walks the attributes in the order they were assigned and builds dotted names such as
``"extras.0.weight"``, the keys of ``state_dict()`` and of checkpoint files (PyTorch's naming, so what a
student learns carries over).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from .. import backend
from ..autograd import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module: ``requires_grad`` is True by default."""

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` did not load: missing and unexpected key names."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and networks. Subclasses set attributes in ``__init__`` and define ``forward``.

    ``module(x)`` calls ``module.forward(x)``. ``training`` is True after construction and after
    ``train()``, False after ``eval()``; layers such as BatchNorm2d behave differently in the two modes.
    """

    training: bool = True
    _buffer_names: tuple[str, ...] | list[str] = ()  # a Module without super().__init__() has none

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffer_names", [])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ----------------------------------------------------------------- buffers
    def register_buffer(self, name: str, array: Any) -> None:
        """Keep ``array`` as attribute ``name`` and in ``state_dict()``, but not among the parameters."""
        if "_buffer_names" not in vars(self):
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before register_buffer()")
        setattr(self, name, backend.asarray(array) if array is not None else None)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    # ----------------------------------------------------------------- traversal
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules with their names (list items as ``name.i``, dict items as ``name.key``)."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Module):
                        yield f"{name}.{key}", item

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (name ``prefix``, "" at the top) and every sub-module, depth first, each once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Parameters held directly: attributes, and items of list, tuple and dict attributes.

        The same containers as :meth:`named_children` walks, so a weight kept next to sub-modules in
        a dict is trained and saved like them.
        """
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Parameter):
                        yield f"{name}.{i}", item
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Parameter):
                        yield f"{name}.{key}", item

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every parameter of this module and its sub-modules.

        A parameter shared by two modules is listed once, under the first name found.
        """
        seen: set[int] = set()
        for prefix, m in self.named_modules():
            for name, p in m._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        """Every Parameter (each once): what an optimizer updates."""
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        """(dotted name, array) for every registered buffer (e.g. BatchNorm running statistics)."""
        for prefix, m in self.named_modules():
            for name in m._buffer_names:
                value = getattr(m, name)
                if value is not None:
                    yield (f"{prefix}.{name}" if prefix else name), value

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalar weights (only those with requires_grad when ``trainable_only``)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ----------------------------------------------------------------- modes and gradients
    def train(self, mode: bool = True) -> Module:
        """Set training mode (``training = mode``) on this module and all sub-modules; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode (``train(False)``): BatchNorm uses its running statistics."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget the gradients of all parameters (sets ``.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    def apply(self, fn: Any) -> Module:
        """Call ``fn(module)`` on every sub-module, then on self (e.g. a custom initialisation)."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    # ----------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict[str, Any]:
        """Every parameter and buffer by dotted name, as arrays (the live arrays, not copies)."""
        state: OrderedDict[str, Any] = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data
        for name, b in self.named_buffers():
            state[name] = b
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from ``state`` into the parameters and buffers with the same names.

        Values are copied into the existing arrays (so an optimizer holding the parameters keeps
        working) and converted to their dtype and backend. A key whose shape differs is always an error;
        with ``strict`` so is any missing or unexpected key. The error lists all problems at once. With
        ``strict=False`` the missing and unexpected keys are returned.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        misshaped = [
            f"{k}: checkpoint {tuple(backend.to_numpy(state[k]).shape)} vs model {tuple(own[k].shape)}"
            for k in own
            if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)
        ]
        problems = []
        if misshaped:
            problems.append("mis-shaped keys: " + "; ".join(misshaped))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise KeyError(f"load_state_dict({type(self).__name__}): " + " | ".join(problems))
        for k, target in own.items():
            if k in state:
                value = state[k].data if isinstance(state[k], Tensor) else state[k]
                target[...] = backend.asarray(value, dtype=target.dtype)
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- display
    def extra_repr(self) -> str:
        """The arguments shown in ``repr`` (override in layers)."""
        return ""

    def __repr__(self) -> str:
        kids = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        lines = [head]
        for name, m in kids:
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Indexable (``seq[0]``, ``seq[-1]``, ``seq[1:3]`` gives a Sequential), iterable and sized; the children
    are named "0", "1", ... in ``state_dict()``.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
        self._items: list[Module] = list(modules)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self._items):
            yield str(i), m

    def forward(self, x: Any) -> Any:
        for m in self._items:
            x = m(x)
        return x

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self._items.append(module)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(*self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)


class ModuleList(Module):
    """A list of modules whose parameters are found (names "0", "1", ...); it has no forward of its own."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self._items: list[Module] = []
        for m in modules:
            self.append(m)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self._items):
            yield str(i), m

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self._items.append(module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)
