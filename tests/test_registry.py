"""Every row of the family table points at a real Config, Model and presets."""

import dataclasses

import pytest

from lmlab import registry
from lmlab.errors import ConfigError


@pytest.mark.parametrize("name", sorted(registry.FAMILIES))
def test_rows_resolve(name):
    family = registry.get(name)
    assert dataclasses.is_dataclass(family.config_class())
    assert callable(family.model_class())
    assert isinstance(family.preset_table(), dict)


def test_unknown_family_suggests():
    with pytest.raises(ConfigError, match="did you mean 'bert'"):
        registry.get("bertt")
