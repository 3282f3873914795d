"""Source adapters: one per format, each turning one input record into candidate groups."""

from __future__ import annotations

from rmcore.core.formats import FORMATS
from rmcore.data.adapters.common import Adapter
from rmcore.data.adapters.hub import SHP, SUMMARIZE, WEBGPT
from rmcore.data.adapters.long import LONG
from rmcore.data.adapters.mapping import MAPPING
from rmcore.data.adapters.oasst import OASST
from rmcore.data.adapters.transcripts import HH_RLHF, PREFERENCE

ADAPTERS: dict[str, Adapter] = {
    "hh_rlhf": HH_RLHF,
    "preference": PREFERENCE,
    "oasst": OASST,
    "mapping": MAPPING,
    "long": LONG,
    "webgpt": WEBGPT,
    "summarize_from_feedback": SUMMARIZE,
    "shp": SHP,
}
assert set(ADAPTERS) == set(FORMATS), "every format in options.py needs an adapter"

__all__ = ["ADAPTERS", "Adapter"]
