"""The renderers' caches of parsed addresses and geo details: a cached answer is always the
answer for this very value, never for an equal-looking one parsed before it."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.render.fields import _parse_geo, parse_geo, read_ip
from tests.render.test_properties import geo, ips


def test_geo_values_equal_in_python_but_not_in_json_convert_each_by_its_own_type() -> None:
    # 1 == True == 1.0 and 0.0 == -0.0 in Python (and hash alike): a cache keyed on the items
    # would hand one the other's conversion.
    assert parse_geo({"asn": 1}).asn == 1
    as_bool = parse_geo({"asn": True})
    assert as_bool.asn is None and as_bool.leftover == {"asn": True}
    assert parse_geo({"asn": 1.0}).leftover == {"asn": 1.0}

    north = parse_geo({"latitude": 0.0, "longitude": 1})
    south = parse_geo({"latitude": -0.0, "longitude": 1})
    assert north.lat is not None and south.lat is not None
    assert math.copysign(1, north.lat) == 1 and math.copysign(1, south.lat) == -1


def test_details_that_are_not_json_are_converted_uncached() -> None:
    huge = parse_geo({"asn": 2**70, "city": "Oslo"})
    assert huge.city == "Oslo" and huge.asn is None and huge.leftover == {"asn": 2**70}


@settings(max_examples=300)
@given(st.lists(geo, min_size=1, max_size=6))
def test_cached_geo_is_what_converting_afresh_gives(details: list[Any]) -> None:
    for value in details * 2:  # the second round is served from the cache
        if isinstance(value, dict):
            assert parse_geo(value) == _parse_geo(value)


@settings(max_examples=300)
@given(st.lists(ips, min_size=1, max_size=6))
def test_cached_address_is_what_parsing_afresh_gives(values: list[str]) -> None:
    for value in values * 2:
        ip, text = read_ip(value)
        try:
            fresh = ipaddress.ip_address(value) if "%" not in value else None
        except ValueError:
            fresh = None
        assert ip == fresh and text == (str(fresh) if fresh is not None else None)
