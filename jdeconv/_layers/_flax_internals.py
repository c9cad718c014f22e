"""Every access jdeconv makes to Flax's private state, in one place.

Flax has no public API for these. Each function says what it reads and what
public API would replace it; ``tests/test_flax_internals.py`` pins the
behaviour of each, so that a Flax release that changes one fails there, by
name, rather than somewhere in the layers.

Used by :mod:`jdeconv.layers` (the functional layers create a submodule in the
calling module, as TensorFlow's create variables in the calling scope) and by
the NNX layers (which sow regularization penalties only inside
``nnx.capture``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import flax.linen as nn
    from flax import nnx


def running_linen_module() -> nn.Module | None:
    """The linen module whose method is running, or ``None`` outside any.

    Reads ``flax.linen.module._context.module_stack``, the stack Flax pushes
    each bound module onto while one of its methods runs (its own
    ``flax.linen.partitioning`` helpers read it the same way). A public
    replacement would be an accessor such as ``nn.current_module()``; without
    one, a caller would have to pass its module (``self``) explicitly.
    """
    from flax.linen import module

    stack = module._context.module_stack
    return stack[-1] if stack else None


def in_compact_method(parent: nn.Module) -> bool:
    """Whether ``parent`` is running a method decorated with ``@nn.compact``.

    Reads ``Module._state.in_compact_method``, the flag Flax checks before it
    lets a method create submodules inline. No public replacement: Flax
    raises ``AssignSubModuleError`` only once a submodule is bound.
    """
    return bool(parent._state.in_compact_method)


def child(parent: nn.Module, name: str) -> nn.Module | None:
    """The submodule ``parent`` created under ``name``, or ``None``.

    Reads ``Module._state.children``, where Flax registers what a compact
    method creates under each name: a submodule, or for a variable the name
    of its collection. No public replacement: inline submodules are not
    attributes of their parent.
    """
    import flax.linen as nn

    value = parent._state.children.get(name)
    return value if isinstance(value, nn.Module) else None


def name_reserved(parent: nn.Module, name: str) -> bool:
    """Whether ``name`` is taken in ``parent``'s scope (by a submodule or a variable).

    Calls ``flax.core.Scope.name_reserved``, a method without a leading
    underscore but undocumented. Flax's own error for a duplicate name
    (``NameInUseError``) comes only after the submodule is created.
    """
    scope = parent.scope
    return scope is not None and scope.name_reserved(name)


def capturing(module: nnx.Module) -> bool:
    """Whether ``module`` runs inside ``nnx.capture``, which collects sown values.

    Reads the attribute ``__captures__`` that ``nnx.capture`` sets on every
    module it runs, the same test ``nnx.Module.sow`` makes. Outside
    ``nnx.capture``, ``sow`` stores the value on the module and warns that this
    is deprecated; a public ``nnx.is_capturing(module)`` would replace this.
    """
    return hasattr(module, "__captures__")
