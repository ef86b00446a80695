"""Geo details convert each value by its own type, and the renderers' cache of parsed addresses
always answers for this very value, never for an equal-looking one parsed before it."""

from __future__ import annotations

import ipaddress
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.render.fields import parse_geo, read_ip
from tests.render.test_properties import ips


def test_geo_values_equal_in_python_but_not_in_json_convert_each_by_its_own_type() -> None:
    """1 == True == 1.0 and 0.0 == -0.0 in Python, yet each converts as its JSON type says."""
    assert parse_geo({"asn": 1}).asn == 1
    as_bool = parse_geo({"asn": True})
    assert as_bool.asn is None and as_bool.leftover == {"asn": True}
    assert parse_geo({"asn": 1.0}).leftover == {"asn": 1.0}

    north = parse_geo({"latitude": 0.0, "longitude": 1})
    south = parse_geo({"latitude": -0.0, "longitude": 1})
    assert north.lat is not None and south.lat is not None
    assert math.copysign(1, north.lat) == 1 and math.copysign(1, south.lat) == -1


@settings(max_examples=300)
@given(st.lists(ips, min_size=1, max_size=6))
def test_cached_address_is_what_parsing_afresh_gives(values: list[str]) -> None:
    """The cached reading of an IP address is exactly what parsing the string afresh gives."""
    for value in values * 2:
        ip, text = read_ip(value)
        try:
            fresh = ipaddress.ip_address(value) if "%" not in value else None
        except ValueError:
            fresh = None
        assert ip == fresh and text == (str(fresh) if fresh is not None else None)


def test_each_reading_of_geo_details_gets_its_own_leftover() -> None:
    """Renderers put `leftover` into the document they return: a change to one document's copy
    never shows in another event's reading of the same details."""
    details = {"city": "Oslo", "latitude": "north", "longitude": 1}
    first = parse_geo(details)
    first.leftover["latitude"] = "changed by a sink"
    assert parse_geo(details).leftover == {"latitude": "north", "longitude": 1}
