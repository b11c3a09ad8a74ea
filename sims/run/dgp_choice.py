"""``dgp=<module>.<Class>``: a DGP class of the user's own as the choice of the ``dgp`` group.

The choice replaces the whole DGP config, as ``dgp=<name>`` does: it is registered in Hydra's
config store as the option ``dgp/<module>.<Class>`` holding only ``_target_``, so an
experiment's ``override /dgp`` and the command line combine as with any option.
``dgp._target_=<module>.<Class>`` means the same (it would otherwise keep the parameters of the
DGP it replaces). Parameters are then set with ``dgp.<param>=...`` (which may name keys the
composed node does not hold yet: :func:`sims.api.open_mapping_overrides`). The class's defaults fill in every parameter not set when the study is validated
(:func:`sims.run.study.validate`, after the ``_target_`` is checked against ``allow_targets``),
so the stored config, and its provenance hash, lists them all.
"""
from __future__ import annotations

from typing import Sequence

from hydra.core.config_store import ConfigStore

from estimators.presets import available

GROUP = "dgp"


def is_class_choice(choice: object) -> bool:
    """Whether a ``dgp=`` choice names a class (dotted) rather than a config file."""
    return isinstance(choice, str) and "." in choice and choice not in available(GROUP)


def register(target: str) -> None:
    ConfigStore.instance().store(group=GROUP, name=target, node={"_target_": target})


def class_dgp_overrides(overrides: Sequence[str]) -> list[str]:
    """Register every class a ``dgp=`` or ``dgp._target_=`` override names, and rewrite the
    latter as the former."""
    rewritten = []
    for override in overrides:
        key, equals, value = override.partition("=")
        if equals and key.lstrip("+") in (GROUP, f"{GROUP}._target_") and is_class_choice(value.strip()):
            register(value.strip())
            rewritten.append(f"{GROUP}={value.strip()}")
        else:
            rewritten.append(override)
    return rewritten
