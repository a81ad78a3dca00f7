"""Plugin models named on the command line (``models=[pkg.module:Class]``), imported before the config schema.

Hydra checks ``model.<name>.*`` against ``ModelSettings``, which is derived from the
registered models; a plugin named only on the command line must therefore be
registered before :mod:`recsys.config` builds the schema. Entry-point plugins need
nothing of this: they are registered when the registry is imported.

>>> plugin_targets(["split.seed=1", "models=[pop,'mypkg.recs:MyModel']"])
['mypkg.recs:MyModel']
>>> plugin_targets(["+models=mypkg.recs:MyModel"])
['mypkg.recs:MyModel']
"""

from __future__ import annotations

import sys


def plugin_targets(overrides: list[str]) -> list[str]:
    """The ``package.module:Attr`` entries of a ``models=`` override (with or without ``+``/``++``)."""
    targets: list[str] = []
    for override in overrides:
        key, sep, value = override.lstrip("+").partition("=")
        if not sep or key.strip() != "models":
            continue
        for entry in value.strip().strip("[]").split(","):
            entry = entry.strip().strip("'\"")
            if ":" in entry:
                targets.append(entry)
    return targets


def preload_plugins(overrides: list[str]) -> list[str]:
    """Register the plugin models of ``overrides``; rebuild ``ModelSettings`` when any is new.

    A plugin that cannot be loaded ends the process with one ``error:`` line (exit code 2).
    """
    from recsys.errors import RecsysError
    from recsys.models import registry

    targets = plugin_targets(overrides)
    if not targets:
        return []
    try:
        names = [registry.load_plugin(target) for target in targets]
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if any(not hasattr(registry.ModelSettings, "__dataclass_fields__") or name not in
           registry.ModelSettings.__dataclass_fields__ for name in names):
        registry.refresh_settings()
    return names
