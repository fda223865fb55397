import pytest

from keras_pansharp import sensors


def test_lookup_is_case_insensitive_and_aliases_work():
    assert sensors.get_sensor("wv3") is sensors.get_sensor("WorldView-3")
    assert sensors.get_sensor("Gf2").max_value == 1023.0
    assert sensors.get_sensor("wv4") is sensors.get_sensor("GeoEye1")


@pytest.mark.parametrize(
    "name,bands,gains,pan",
    [
        ("WV3", 8, (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14),
        ("WV2", 8, (0.35,) * 7 + (0.27,), 0.11),
        ("GF2", 4, (0.3,) * 4, 0.15),
        ("QB", 4, (0.34, 0.32, 0.30, 0.22), 0.15),
        ("IKONOS", 4, (0.26, 0.28, 0.29, 0.28), 0.17),
        ("GeoEye1", 4, (0.23,) * 4, 0.16),
    ],
)
def test_reference_values(name, bands, gains, pan):
    s = sensors.get_sensor(name)
    assert s.num_bands == bands
    assert s.ms_gnyq == gains
    assert s.pan_gnyq == pan
    assert s.ratio == 4


def test_rgbn_subset_of_eight_band_sensors():
    wv3 = sensors.get_sensor("wv3")
    assert wv3.rgbn_indices == (1, 2, 4, 6)
    sub = wv3.rgbn()
    assert sub.band_names == ("blue", "green", "red", "nir1")
    assert sub.ms_gnyq == (0.355, 0.360, 0.365, 0.335)
    assert sensors.get_sensor("wv3_rgbn") == sub
    assert sensors.get_sensor("qb").rgbn() is sensors.get_sensor("qb")


def test_unknown_sensor_is_an_error_not_a_default():
    with pytest.raises(sensors.UnknownSensorError, match="generic_sensor"):
        sensors.get_sensor("landsat9")
    with pytest.raises(TypeError):
        sensors.get_sensor(3)


def test_generic_sensor_is_explicit():
    g = sensors.generic_sensor(6, bit_depth=12)
    assert g.max_value == 4095.0
    assert g.ms_gnyq == (0.3,) * 6 and g.pan_gnyq == 0.15
    with pytest.raises(ValueError):
        sensors.generic_sensor(0)


def test_registering_a_duplicate_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        sensors.register_sensor(sensors.get_sensor("qb"))
