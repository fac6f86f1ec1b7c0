"""Set-up shared by the importer tests that drive the real modelstore package."""

from __future__ import annotations

import importlib.util

# modelstore 0.0.82 asks every installed library's manager whether it takes the model being
# uploaded; its causalml manager reads ``causalml.inference.meta.base`` and
# ``causalml.propensity`` after a bare ``import causalml``, which no longer imports them (causalml
# 0.18). Without this, any modelstore upload fails with an AttributeError once causalml is
# installed, as it is for the modelshelf-causalml tests.
if importlib.util.find_spec("causalml") is not None:
    import causalml.inference.meta.base
    import causalml.propensity  # noqa: F401
